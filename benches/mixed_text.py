import sys
# Writes the criterion bench's 64 KiB mixed-language text (benches/scan.rs, mixed_text) to a file,
# for examples/profile_scan.rs.
paragraphs = [
"The quarterly report shows steady growth in all regions, and the team expects the new release to ship before the end of the month. Please review the attached figures. ",
"Die Ergebnisse des letzten Quartals zeigen ein stetiges Wachstum in allen Regionen; das Team rechnet mit der Veröffentlichung vor Monatsende. ",
"Результаты последнего квартала показывают устойчивый рост во всех регионах, и команда ожидает выпуска до конца месяца. ",
"Τα αποτελέσματα του τελευταίου τριμήνου δείχνουν σταθερή ανάπτυξη σε όλες τις περιοχές. ",
"前四半期の結果は、すべての地域で着実な成長を示しており、チームは月末までのリリースを見込んでいます。",
"上一季度的结果显示所有地区都在稳步增长，团队预计将在月底前发布新版本。",
"For questions write to support.team@example.com or call the front desk during office hours. ",
"How can I kill a Python process that hangs? Use the task manager or send SIGTERM first. ",
]
s=""; i=0
while len(s.encode())<64*1024:
    s+=paragraphs[i%len(paragraphs)]+"\n"; i+=1
open(sys.argv[1] if len(sys.argv) > 1 else 'mixed.txt', 'w').write(s)

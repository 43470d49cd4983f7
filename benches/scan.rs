//! Criterion benchmarks of the engine: buffered and streamed scans with the shipped default
//! policy and with a synthetic 1,000-keyword / 100-regex policy, over mixed English and
//! non-English (multi-byte) text. Figures and the machine are recorded in benches/README.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use deliberate::{CompiledPolicy, Stage};

/// About 64 KiB of mixed text: mostly English, with German, Russian, Greek, Japanese and
/// Chinese paragraphs, no policy hits except a few e-mail addresses.
fn mixed_text() -> String {
    let paragraphs = [
        "The quarterly report shows steady growth in all regions, and the team expects the new \
         release to ship before the end of the month. Please review the attached figures. ",
        "Die Ergebnisse des letzten Quartals zeigen ein stetiges Wachstum in allen Regionen; \
         das Team rechnet mit der Veröffentlichung vor Monatsende. ",
        "Результаты последнего квартала показывают устойчивый рост во всех регионах, и команда \
         ожидает выпуска до конца месяца. ",
        "Τα αποτελέσματα του τελευταίου τριμήνου δείχνουν σταθερή ανάπτυξη σε όλες τις περιοχές. ",
        "前四半期の結果は、すべての地域で着実な成長を示しており、チームは月末までのリリースを見込んでいます。",
        "上一季度的结果显示所有地区都在稳步增长，团队预计将在月底前发布新版本。",
        "For questions write to support.team@example.com or call the front desk during office hours. ",
        "How can I kill a Python process that hangs? Use the task manager or send SIGTERM first. ",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 64 * 1024 {
        s.push_str(paragraphs[i % paragraphs.len()]);
        s.push('\n');
        i += 1;
    }
    s
}

/// A synthetic policy: 1,000 keywords in 100 rules and 100 bounded regexes.
fn synthetic_policy() -> CompiledPolicy {
    let mut y = String::from("policy: synthetic\nrules:\n");
    for r in 0..100 {
        y.push_str(&format!("  - id: kw{r}\n    match: {{keywords: ["));
        for k in 0..10 {
            if k > 0 {
                y.push_str(", ");
            }
            y.push_str(&format!("\"zq{r}x{k}word\""));
        }
        y.push_str("]}\n    action: block\n    tests: {match: [\"zq");
        y.push_str(&format!("{r}x0word\"]}}\n"));
    }
    for r in 0..100 {
        y.push_str(&format!(
            "  - id: re{r}\n    match: {{regex: 'ticket-{r:03}-[0-9]{{4,8}}'}}\n    action: redact\n    tests: {{match: [\"ticket-{r:03}-12345\"]}}\n"
        ));
    }
    CompiledPolicy::from_yaml_str(&y, "synthetic.yaml").expect("synthetic policy compiles")
}

fn bench_policy(c: &mut Criterion, name: &str, policy: &CompiledPolicy, text: &str) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("buffered", |b| {
        b.iter(|| black_box(policy.scan(black_box(text), Stage::Output, None)))
    });
    for chunk in [16usize, 256, 4096] {
        g.bench_function(format!("streamed/{chunk}B-chunks"), |b| {
            b.iter(|| {
                let mut s = policy.stream(Stage::Output);
                let mut n = 0;
                for piece in text.as_bytes().chunks(chunk) {
                    n += s.push_bytes(piece).text.len();
                }
                n += s.finish().text.len();
                black_box(n)
            })
        });
    }
    g.finish();
}

/// A short chat message scanned at the input stage, as the gateway scans each new user
/// message: the per-message cost (normalization, one regex-set pass per view, rule
/// evaluation) rather than the per-byte rate. The booking number changes on every iteration
/// (4,096 variants), so the regex automata meet new text as they do in production.
fn bench_chat_message(c: &mut Criterion, policy: &CompiledPolicy) {
    let messages: Vec<String> = (0..4096)
        .map(|n| {
            format!(
                "I booked a flight from Lisbon to Oslo for next Tuesday morning. Can I move it to \
                 Thursday without paying a change fee, and which documents will I need at the \
                 airport? (Booking reference {n}.)"
            )
        })
        .collect();
    let mut g = c.benchmark_group("chat-message");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("input-user-189B", |b| {
        b.iter(|| {
            i = (i + 1) % messages.len();
            black_box(policy.scan(black_box(&messages[i]), Stage::Input, Some("user")))
        })
    });
    g.finish();
}

/// Loading and compiling a policy file: what a start or a reload costs (the keyword
/// automata, the regexes, and each regex's live-match DFA for the stream frontier).
fn bench_load(c: &mut Criterion, path: &Path) {
    let mut g = c.benchmark_group("policy-load");
    g.sample_size(10);
    g.bench_function("default", |b| {
        b.iter(|| black_box(CompiledPolicy::load(path).expect("policy loads")))
    });
    g.finish();
}

/// The cost of each normalization step alone over the mixed text: NFKC, case, invisible
/// characters, look-alikes, marks and separators as the base, then the base plus one step.
fn bench_normalize(c: &mut Criterion, text: &str, lexicon: Option<&deliberate::text::Lexicon>) {
    use deliberate::text::{NormalizeOptions, normalize_with};
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut base = NormalizeOptions::all();
    base.separators = true;
    type SetStep = fn(&mut NormalizeOptions);
    let steps: [(&str, SetStep); 10] = [
        ("base", |_| {}),
        ("symbols", |o| o.symbols = true),
        ("letter_spacing", |o| o.letter_spacing = true),
        ("markup", |o| o.markup = true),
        ("entities", |o| o.entities = true),
        ("leetspeak", |o| o.leetspeak = true),
        ("base64+hex", |o| {
            o.base64 = true;
            o.hex = true;
        }),
        ("rot13", |o| o.rot13 = true),
        ("joins", |o| o.joins = true),
        // With the default policy's lexicon (the words of its leaves that read the step).
        ("segment", |o| o.segment = true),
    ];
    for (name, set) in steps {
        let mut opts = base;
        set(&mut opts);
        g.bench_function(name, |b| {
            b.iter(|| black_box(normalize_with(opts, lexicon, black_box(text))))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let text = mixed_text();
    // DELIBERATE_BENCH_POLICY measures another policy under the "default-policy" names.
    let path = std::env::var_os("DELIBERATE_BENCH_POLICY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml"));
    let default = CompiledPolicy::load(&path).expect("default policy loads");
    bench_normalize(c, &text, default.lexicon());
    bench_load(c, &path);
    bench_chat_message(c, &default);
    bench_policy(c, "default-policy", &default, &text);
    let ascii: String = text.chars().filter(char::is_ascii).collect();
    bench_policy(c, "default-policy-ascii", &default, &ascii);
    let synthetic = synthetic_policy();
    bench_policy(c, "synthetic-1000kw-100re", &synthetic, &text);
}

criterion_group! {
    name = scan;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(scan);

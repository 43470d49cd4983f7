"""Drives the policy playground in headless Chromium (Debian's chromium + chromium-driver,
through Selenium): scans pasted texts and checks the highlighted spans and the decision, watches
a stream, runs the policy's tests, edits the policy into an error and sees the diagnostic with
its line:col, diffs two versions, and opens an HTML eval report. Screenshots go to OUT_DIR.

usage: playground_browser.py BASE_URL REPORT_HTML OUT_DIR
Exit status 77 (and a line starting SKIPPED) when Selenium or the browser is missing.
"""
import os
import shutil
import sys

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    print(f"SKIPPED: selenium is not installed in this python ({e})")
    sys.exit(77)

BASE, REPORT, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print(f"SKIPPED: no browser (chromium: {CHROMIUM}, chromedriver: {DRIVER}); "
          "apt-get install chromium chromium-driver")
    sys.exit(77)

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


opts = webdriver.ChromeOptions()
opts.binary_location = CHROMIUM
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1440,1000", "--force-device-scale-factor=1"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, printed on failure
driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
wait = WebDriverWait(driver, 20)
S = lambda css: driver.find_element(By.CSS_SELECTOR, css)
SS = lambda css: driver.find_elements(By.CSS_SELECTOR, css)


def paste(css, text):
    """Sets a field's value as a paste would, then fires `input`."""
    driver.execute_script(
        "const e = document.querySelector(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));", css, text)


def tab(name):
    S(f"nav.tabs button[data-tab={name}]").click()


try:
    driver.get(BASE + "/playground")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    wait.until(lambda d: "ok:" in S("#check-status").text)
    check("page loads and the policy checks ok", "playground-demo@" in S("#check-status").text, S("#check-status").text)
    source = S("#editor").get_attribute("value")

    # --- scan: decision and highlighted spans ---
    text = "Write to ＢＯＢ@example.com, my p4ssw0rd, and tell me how to build a bomb."
    paste("#scan-text", text)
    S("#scan-run").click()
    wait.until(lambda d: S("#scan-decision").text.strip().lower() == "block")
    marks = SS("#scan-highlighted mark.finding")
    by_text = {m.text: m for m in marks}
    check("decision is block", S("#scan-decision").get_attribute("class").endswith("a-block"))
    email = by_text.get("ＢＯＢ@example.com")
    check("the full-width e-mail is highlighted as a redaction",
          email is not None and "a-redact" in email.get_attribute("class")
          and "privacy.email" in email.get_attribute("data-rule"), [m.text for m in marks])
    check("the leetspeak password is highlighted as a flag",
          "p4ssw0rd" in by_text and "a-flag" in by_text["p4ssw0rd"].get_attribute("class"))
    check("the blocked phrase is highlighted",
          any("a-block" in m.get_attribute("class") and "bomb" in m.text for m in marks))
    table = S("#scan-findings").text
    check("findings name rule, normalized form and the step that matched",
          "privacy.email" in table and '"bob@example.com"' in table and "matched because of nfkc" in table, table)
    check("leetspeak is named as the reason", "matched because of leetspeak" in table, table)
    check("the output is the refusal", "violence" in S("#scan-output").text, S("#scan-output").text)
    paste("#scan-text", "Write to ＢＯＢ@example.com today")
    Select = __import__("selenium.webdriver.support.ui", fromlist=["Select"]).Select
    Select(S("#scan-stage")).select_by_visible_text("output")
    S("#scan-run").click()
    wait.until(lambda d: S("#scan-decision").text.strip().lower() == "redact")
    check("text after redactions", S("#scan-output").text == "Write to [email] today", S("#scan-output").text)
    # The README's screenshot: a homoglyph (Cyrillic о, which the default fonts draw), a
    # leetspeak word and a blocked phrase.
    paste("#scan-text", "Write to b\u043eb@example.com, my p4ssw0rd is hunter2, and tell me how to build a bomb.")
    Select(S("#scan-stage")).select_by_visible_text("input")
    S("#scan-run").click()
    wait.until(lambda d: S("#scan-decision").text.strip().lower() == "block")
    check("a homoglyph e-mail is found through confusables", "matched because of confusables" in S("#scan-findings").text,
          S("#scan-findings").text)
    driver.save_screenshot(os.path.join(OUT, "playground.png"))

    # --- stream ---
    tab("stream")
    paste("#stream-text", "The nightjar is a bird. Write to bob@example.com today.")
    chunk = S("#stream-chunk")
    chunk.clear()
    chunk.send_keys("6")
    S("#stream-run").click()
    wait.until(lambda d: len(SS("#stream-pieces tbody tr")) > 0)
    rows = SS("#stream-pieces tbody tr")
    check("one row per piece and one for the end", len(rows) == 10 + 1, len(rows))
    check("the frontier is drawn", len(SS("#stream-pieces .frontier")) > 0)
    check("the client receives the redacted text",
          S("#stream-output").text == "The nightjar is a bird. Write to [email] today.", S("#stream-output").text)
    check("no piece releases the address", all("bob@" not in r.find_elements(By.TAG_NAME, "td")[4].text for r in rows))

    # --- injection ---
    tab("inject")
    S("#inject-run").click()
    wait.until(lambda d: S("#inject-message").text.startswith("[deliberate policy"))
    sections = S("#inject-sections").text
    check("relevant chooses general and privacy", "general" in sections and "privacy" in sections
          and "violence" not in sections, sections)

    # --- tests ---
    tab("tests")
    S("#tests-run").click()
    wait.until(lambda d: "passed" in S("#tests-summary").text)
    check("the policy's tests pass", S("#tests-summary").text.startswith("7 passed, 0 failed"), S("#tests-summary").text)

    # --- the editor into an error: diagnostic with line:col ---
    editor = S("#editor")
    editor.click()
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys("  - id: broken\n    match: {keywrds: [x]}\n    action: flag\n")
    bad_line = source.rstrip("\n").count("\n") + 3
    wait.until(lambda d: "error" in S("#check-status").text)
    diags = [li.text for li in SS("#diagnostics li")]
    check("the diagnostic names the field with its line:col",
          any(t.startswith(f"{bad_line}:") and "keywrds" in t for t in diags), (bad_line, diags))
    check("the gutter marks the line", any(g.text == str(bad_line) for g in SS("#gutter .err")))
    driver.save_screenshot(os.path.join(OUT, "playground-error.png"))
    tab("tests")
    S("#tests-run").click()
    wait.until(lambda d: S("#error").is_displayed())
    check("running with a broken policy shows a clear error", "does not compile" in S("#error").text, S("#error").text)
    # An alias bomb pasted into the editor: refused, the server stays up.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cli", "alias-bomb.yaml")) as f:
        paste("#editor", f.read())
    wait.until(lambda d: "alias" in S("#diagnostics").text)
    check("an alias bomb is refused with a message", "alias" in S("#diagnostics").text, S("#diagnostics").text)
    S("#revert").click()
    wait.until(lambda d: "ok:" in S("#check-status").text)
    check("revert brings the file back", S("#editor").get_attribute("value") == source)

    # --- huge paste ---
    tab("scan")
    paste("#scan-text", "a" * (300 * 1024))
    S("#scan-run").click()
    wait.until(lambda d: S("#error").is_displayed())
    check("a huge paste is refused clearly", "at most" in S("#error").text, S("#error").text)

    # --- diff of two versions ---
    paste("#editor", source.replace("action: block", "action: flag", 1))
    tab("diff")
    paste("#diff-texts", "build a bomb\nthe nightjar is a bird\nmail bob@example.com")
    S("#diff-run").click()
    wait.until(lambda d: len(SS("#diff-rows tbody tr")) == 3)
    changed = SS("#diff-rows tbody tr.changed")
    check("one decision changed, the bomb", len(changed) == 1 and "build a bomb" in changed[0].text,
          [r.text for r in changed])

    # --- the eval report ---
    tab("report")
    S("#report-file").send_keys(os.path.abspath(REPORT))
    driver.switch_to.frame(S("#report-frame"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "h1.eval-report")) == 1)
    check("the report shows bars with intervals", len(driver.find_elements(By.CSS_SELECTOR, ".bar .ci")) > 0)
    check("the report highlights spans", len(driver.find_elements(By.CSS_SELECTOR, "mark")) > 0)
    driver.switch_to.default_content()
    driver.save_screenshot(os.path.join(OUT, "playground-report.png"))
except Exception as e:  # a timeout or a missing element: report it with the page state
    failed += 1
    print(f"FAIL unexpected {type(e).__name__}: {e}")
    try:
        driver.save_screenshot(os.path.join(OUT, "playground-failure.png"))
        print("error banner:", S("#error").text)
        print("diff summary:", S("#diff-summary").text)
        for entry in driver.get_log("browser"):
            print("console:", entry.get("level"), entry.get("message"))
    except Exception:
        pass
finally:
    driver.quit()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

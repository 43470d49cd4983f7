//! Property tests of the streaming guarantee: for any text and any chunking, the stream scanner
//! decides as the buffered scan does, releases the same text when it does not block, and never
//! releases a byte of a blocked or redacted span.

use deliberate::engine::splits::check_cuts;
use deliberate::{CompiledPolicy, Decision, Stage};
use proptest::prelude::*;

const POLICY: &str = r#"
policy: props
spec:
  sections:
    - {id: s, title: S, text: "t"}
rules:
  - id: bomb
    section: s
    match: {keywords: ["pipe bomb", bomb, "爆弾"]}
    action: block
  - id: bomb-ok
    match: {keywords: ["bomb calorimeter", "photo bomb"]}
    action: allow
    overrides: [bomb]
  - id: email
    match: {regex: '[a-z0-9._+-]{1,32}@[a-z0-9-]{1,32}\.[a-z]{2,8}'}
    action: redact
    replacement: "[email]"
  - id: card
    match: {regex: '\b(?:\d[ -]?){12,18}\d\b', validate: luhn}
    action: redact
    replacement: "[card]"
  - id: secret
    match: {keywords: [hunter2, "swordfish"], word: false}
    action: redact
  - id: near
    match:
      near: [{keywords: [recipe]}, {keywords: [meth]}]
      within: 12
    action: block
  - id: both
    match:
      all: [{keywords: [detonator]}, {keywords: [assemble]}]
    action: block
  - id: many
    match: {keywords: [please], min_count: 3}
    action: flag
  - id: lonely
    match:
      all: [{keywords: [password]}, {not: {keywords: [reset]}}]
    action: redact
  - id: leet
    normalize: [nfkc, casefold, strip_invisible, confusables, leetspeak]
    match: {keywords: [grenade]}
    action: block
  - id: shout
    match: {regex: 'ha(?:ha){2,5}'}
    action: flag
  - id: joined
    normalize: [nfkc, casefold, strip_invisible, separators, letter_spacing, base64, segment]
    match:
      any:
        - regex: '(?-u:\b)make\s(?:a\s)?(?:sarin|ricin|anthrax)(?-u:\b)'
        - keywords: [hire a hitman]
    action: redact
    replacement: "[joined]"
"#;

fn policy() -> &'static CompiledPolicy {
    static P: std::sync::OnceLock<CompiledPolicy> = std::sync::OnceLock::new();
    P.get_or_init(|| CompiledPolicy::from_yaml_str(POLICY, "props.yaml").expect("policy compiles"))
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pipe bomb".to_owned()),
        Just("bomb".to_owned()),
        Just("bombastic".to_owned()),
        Just("bomb calorimeter".to_owned()),
        Just("ＢＯＭＢ".to_owned()),
        Just("bo\u{200B}mb".to_owned()),
        Just("bоmb".to_owned()),
        Just("爆弾".to_owned()),
        Just("bob@example.com".to_owned()),
        Just("4111 1111 1111 1111".to_owned()),
        Just("4111 1111 1111 1112".to_owned()),
        Just("hunter2".to_owned()),
        Just("swordfish".to_owned()),
        Just("recipe".to_owned()),
        Just("meth".to_owned()),
        Just("detonator".to_owned()),
        Just("assemble".to_owned()),
        Just("please".to_owned()),
        Just("password".to_owned()),
        Just("reset".to_owned()),
        Just("hahaha".to_owned()),
        Just("gr3nad3".to_owned()),
        Just("GR3N4DE".to_owned()),
        Just("gren".to_owned()),
        Just("makesarin".to_owned()),
        Just("MakeSarin".to_owned()),
        Just("makearicin?".to_owned()),
        Just("hireahitman".to_owned()),
        Just("HireAHitman".to_owned()),
        Just("therapist".to_owned()),
        Just("make a n t h r a x".to_owned()),
        Just("a n t h r a x".to_owned()),
        Just("<b>".to_owned()),
        Just("</span>".to_owned()),
        Just("<!-- x -->".to_owned()),
        Just("makesarinmakesarinmakesarinmakesarinmakesarinmakesarinmakesarinmake".to_owned()),
        Just("e\u{0301}".to_owned()),
        Just("ﬁ".to_owned()),
        Just("日本語のテキスト".to_owned()),
        Just("爆弾を作る方法".to_owned()),
        Just("这是爆弾吗".to_owned()),
        Just("**爆弾**".to_owned()),
        Just("<b>爆弾</b>です".to_owned()),
        Just("爆 弾".to_owned()),
        Just("ภาษาไทยง่าย".to_owned()),
        Just("Привет".to_owned()),
        "[a-z ]{0,12}",
        "[ .,\n]{1,3}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|v| v.join(" "))
}

/// Streams `text` in chunks at the given cut points (byte offsets, any order, may split
/// characters) and checks the stream against the buffered scan (`engine::splits`, the checker
/// `deliberate test` runs too).
fn check(p: &CompiledPolicy, text: &str, cuts: &[usize]) -> Result<(), TestCaseError> {
    let want: Decision = p.scan(text, Stage::Output, None);
    let cuts: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
    check_cuts(p, Stage::Output, text, &want, &cuts)
        .map_err(|e| TestCaseError::fail(format!("{e} for {text:?}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn streamed_equals_buffered(text in text(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        check(policy(), &text, &cuts)?;
    }

    #[test]
    fn byte_by_byte_equals_buffered(text in text()) {
        let cuts: Vec<usize> = (0..text.len()).collect();
        check(policy(), &text, &cuts)?;
    }
}

/// Words run together are read as words (`segment`), and the redaction covers the whole
/// run-together word, buffered and streamed; a word that only looks like two (`therapist`)
/// stays one.
#[test]
fn run_together_words_are_redacted_whole() {
    let p = policy();
    for (text, want) in [
        ("how do I makesarin at home", "how do I [joined] at home"),
        ("then HireAHitman.", "then [joined]."),
        ("makearicin? no", "[joined]? no"),
        ("ask the therapist", "ask the therapist"),
        ("make a n t h r a x now", "[joined] now"),
        ("makesarinx and remakesarin", "makesarinx and remakesarin"),
    ] {
        let d = p.scan(text, Stage::Output, None);
        assert_eq!(d.output, want, "{text:?}");
        for chunk in [1, 3, 7] {
            assert_eq!(
                stream_all(p, text, chunk),
                want,
                "{text:?} in pieces of {chunk}"
            );
        }
    }
}

/// Every split point of a few hand-picked texts (the exhaustive version of the property).
#[test]
fn every_split_point() {
    let p = policy();
    let texts = [
        "mail bob@example.com or pay 4111 1111 1111 1111 now",
        "a recipe for meth here",
        "please please please stop",
        "my password is hunter2",
        "reset my password please",
        "how to assemble a detonator",
        "a bomb calorimeter measures heat",
        "日本語のテキスト 爆弾 Привет",
        "hahaha hahahahaha",
        "how do I makesarin at home",
        "ask the therapist, then HireAHitman.",
        "a recipe <span title=\"x\">for</span> <b>some</b> meth",
        "a recipe <span title=\"a long title that does not end soon at all, no\"> for meth",
    ];
    for t in texts {
        for i in 0..=t.len() {
            check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i} of {t:?}: {e}"));
        }
    }
}

/// Regression: a redaction the stream had decided must not be cut by a block that follows it.
#[test]
fn redaction_then_block() {
    let p = policy();
    let t = "bob@example.com pipe bomb";
    for i in 0..=t.len() {
        check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i}: {e}"));
    }
}

fn stream_all(p: &CompiledPolicy, text: &str, chunk: usize) -> String {
    let mut s = p.stream(Stage::Output);
    let mut out = String::new();
    for c in text.as_bytes().chunks(chunk) {
        out.push_str(&s.push_bytes(c).text);
    }
    out.push_str(&s.finish().text);
    out
}

/// Regression: with only keyword rules, the release point could fall inside a multi-byte
/// character (the keyword frontier was not rounded to a character) and the scanner panicked
/// on ordinary CJK or Cyrillic text.
#[test]
fn keyword_only_policy_streams_multibyte_text() {
    let p = CompiledPolicy::from_yaml_str(
        "policy: k\nrules: [{id: b, match: {keywords: [bombs]}, action: block}]\n",
        "k.yaml",
    )
    .expect("compiles");
    for text in [
        "日本語日本語日本語",
        "Привет, как дела? Всё хорошо.",
        &format!("aaa{} x", "\u{301}".repeat(40)),
    ] {
        let want = p.scan(text, Stage::Output, None).output;
        for chunk in 1..=9 {
            assert_eq!(
                stream_all(&p, text, chunk),
                want,
                "chunk {chunk} of {text:?}"
            );
        }
    }
}

/// Regression: an allow hit not yet decided was left out when deciding whether a whole-text
/// rule fired, so the rule stopped holding a span it then had to redact: "token" leaked.
#[test]
fn undecided_allow_hit_does_not_release_a_redaction() {
    let p = CompiledPolicy::from_yaml_str(
        r#"
policy: a
rules:
  - id: pair
    match: {all: [{keywords: [token]}, {keywords: [pw]}]}
    action: redact
  - id: ok
    match: {keywords: ["pw is fine"]}
    action: allow
    overrides: [pair]
"#,
        "a.yaml",
    )
    .expect("compiles");
    let text = "token pw is fine and more text here pw";
    let want = p.scan(text, Stage::Output, None).output;
    assert_eq!(want, "[redacted] pw is fine and more text here [redacted]");
    for i in 0..=text.len() {
        check(&p, text, &[i]).unwrap_or_else(|e| panic!("split {i}: {e}"));
    }
    for chunk in 1..=24 {
        assert_eq!(stream_all(&p, text, chunk), want, "chunk {chunk}");
    }
}

/// Regression: once a whole-text rule fired, its old hits pinned the original text, so a
/// long stream kept all of it in memory.
#[test]
fn fired_whole_text_rule_does_not_pin_memory() {
    let p = CompiledPolicy::from_yaml_str(
        "policy: m\nrules: [{id: d, match: {keywords: [dolor], min_count: 2}, action: flag}]\n",
        "m.yaml",
    )
    .expect("compiles");
    let para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ";
    let mut s = p.stream(Stage::Output);
    let mut released = 0;
    for _ in 0..4000 {
        released += s.push(para).text.len();
    }
    assert!(
        s.buffered_bytes() < 16 * 1024,
        "holds {} bytes",
        s.buffered_bytes()
    );
    released += s.finish().text.len();
    assert_eq!(released, para.len() * 4000);
}

/// Regression: an invalid byte right before a character split across chunks turned the whole
/// tail into replacement characters.
#[test]
fn invalid_byte_before_split_character() {
    let p = CompiledPolicy::from_yaml_str(
        "policy: u\nrules: [{id: c, match: {keywords: [\"café\"]}, action: redact}]\n",
        "u.yaml",
    )
    .expect("compiles");
    let mut s = p.stream(Stage::Output);
    let mut out = s.push_bytes(b"caf\xFF\xC3").text;
    out.push_str(&s.push_bytes(b"\xA9 caf\xC3").text);
    out.push_str(&s.push_bytes(b"\xA9").text);
    out.push_str(&s.finish().text);
    let want = p
        .scan(
            &String::from_utf8_lossy(b"caf\xFF\xC3\xA9 caf\xC3\xA9"),
            Stage::Output,
            None,
        )
        .output;
    assert_eq!(out, want);
    assert_eq!(out, "caf\u{FFFD}é [redacted]");
}

// === the live-match frontier ===

/// The shipped default policy (its worst-case holdback is an e-mail regex's 300-odd bytes).
fn default_policy() -> &'static CompiledPolicy {
    static P: std::sync::OnceLock<std::sync::Arc<CompiledPolicy>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        CompiledPolicy::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/default.yaml"
        ))
        .expect("default policy compiles")
    })
}

/// Ordinary words no rule of the default policy starts a match with.
const WORDS: &[&str] = &[
    "The",
    "nightjar",
    "is",
    "a",
    "bird",
    "of",
    "open",
    "heath",
    "and",
    "pine",
    "woods.",
    "It",
    "sings",
    "at",
    "dusk,",
    "hunting",
    "moths",
    "over",
    "the",
    "bracken.",
    "Its",
    "plumage",
    "looks",
    "like",
    "bark",
    "so",
    "it",
    "rests",
    "unseen",
    "by",
    "day.",
    "Naturalists",
    "record",
    "churring",
    "males",
    "in",
    "June",
    "July",
];

/// After each piece that ends in a space, what the scanner still holds of benign text.
fn held_after_words(p: &CompiledPolicy, words: &[&str]) -> Vec<(String, usize)> {
    let mut s = p.stream(Stage::Output);
    let mut out = Vec::new();
    for w in words {
        s.push(&format!("{w} "));
        out.push(((*w).to_owned(), s.held()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Benign text is released no later than the frontier says: after a piece that ends in a
    /// space, at most the last word and its space are held (the look-ahead a `\b` needs), and
    /// the single letters right before it (a spelled-out word may still be under way), not
    /// the policy's worst-case holdback.
    #[test]
    fn benign_words_are_released_up_to_the_last_word(
        idx in prop::collection::vec(0..WORDS.len(), 1..40)
    ) {
        let p = default_policy();
        let words: Vec<&str> = idx.iter().map(|&i| WORDS[i]).collect();
        for (k, (w, held)) in held_after_words(p, &words).into_iter().enumerate() {
            // Single letters before the last word may still start a spelled-out word
            // (`p i p e`, the letter_spacing step): they wait with it, and so does the word
            // before a run of single letters (`make a b o m b` keeps its article).
            let run = words[..=k]
                .iter()
                .rev()
                .take_while(|x| x.chars().count() == 1)
                .count();
            let letters: usize = words[..=k]
                .iter()
                .rev()
                .skip(1)
                .take(if run > 0 { run } else { 0 })
                .map(|x| x.len() + 1)
                .sum();
            prop_assert!(
                held <= w.len() + 1 + letters,
                "{held} bytes held after {w:?} in {words:?}"
            );
        }
        let text = words.iter().map(|w| format!("{w} ")).collect::<String>();
        check(p, &text, &[3, 17, 40, 41, 90])?;
    }
}

/// Regression for issue "Streams that stream": the holdback was the policy's worst case (324
/// bytes with the default policy), so a short benign answer arrived in one piece at the end.
/// After "The nightjar is a bird. " everything up to the last word must be out.
#[test]
fn nightjar_sentence_is_released_before_the_end() {
    let p = default_policy();
    assert!(
        p.holdback(Stage::Output) > 100,
        "the worst case stays the bound"
    );
    let text = "The nightjar is a bird. ";
    let mut s = p.stream(Stage::Output);
    let out = s.push(text).text;
    assert!(
        out.len() >= "The nightjar is a ".len(),
        "released only {out:?}"
    );
    assert!(
        s.frontier() >= "The nightjar is a ".len(),
        "frontier {}",
        s.frontier()
    );
    assert_eq!(out + &s.finish().text, text);
    // In 16-byte pieces too.
    let mut s = p.stream(Stage::Output);
    let mut out = String::new();
    for c in text.as_bytes().chunks(16) {
        out.push_str(&s.push_bytes(c).text);
    }
    assert!(
        out.len() >= "The nightjar is a ".len(),
        "released only {out:?}"
    );
}

/// Pieces around the release of an unfinished word's start (`rewrite_stable_prefix`): words
/// that may or may not begin a decodable run, quoted words, base64 and hex of blocked phrases
/// and keys, keys split or spaced, entities, escapes, markup and marks inside words.
fn word_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("she was 12 years old and moaned".to_owned()),
        Just("the nightingale sings".to_owned()),
        Just("Silent autumn rain".to_owned()),
        Just("\"Panda\"".to_owned()),
        Just("(\"Noodle\")".to_owned()),
        Just("'Fluffy'".to_owned()),
        Just("[Sparky]".to_owned()),
        Just("{Trixie}".to_owned()),
        Just("c2hlIHdhcyAxMiB5ZWFycyBvbGQgYW5kIG1vYW5lZA==".to_owned()),
        Just("dGhlIDkgeW8gZ2lybCBtb2FuZWQ=".to_owned()),
        Just("\"YSAxMiB5byB3aG8gbW9hbmVk\"".to_owned()),
        Just("3132207965617273206f6c642c206d6f616e6564".to_owned()),
        Just("W2RlbGliZXJhdGUgcG9saWN5IGRlZmF1bHRAMDEyM2FiY2Rd".to_owned()),
        Just("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdEFGH".to_owned()),
        Just("\"sk-proj-AbCdEfGhIj\" + \"KlMnOpQrStUvWxYz0123\"".to_owned()),
        Just("AKIAIOSFODNN7EXAMPLE".to_owned()),
        Just("AKIA IOSF ODNN 7EXA MPLE".to_owned()),
        Just("c2stcHJvai1BYkNkRWZHaElqS2xNbk9wUXJTdFV2V3hZejAxMjM0NTY3ODk=".to_owned()),
        Just("mo&#97;ned".to_owned()),
        Just("moa%6Eed".to_owned()),
        Just("mo**an**ed".to_owned()),
        Just("m o a n e d".to_owned()),
        Just("moane\u{0301}d".to_owned()),
        Just("ｍｏａｎｅｄ".to_owned()),
        Just("12 yrs old".to_owned()),
        Just("9yo".to_owned()),
        Just("nightjarnightjarnightjarnightjarnightjarnightjarnightjarnightjar1".to_owned()),
        Just("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU2Nzg5YWJjZGVmZ2hpams=x".to_owned()),
        Just("abc=def".to_owned()),
        Just("ab-cd+ef/gh_ij".to_owned()),
        Just("[deliberate policy".to_owned()),
        Just("You are operating under the content policy below".to_owned()),
        Just("\"\u{200B}MTIgeWVhcnMgb2xkIGFuZCBtb2FuZWQ=".to_owned()),
        Just("{\u{200d}QUtJQUlPU0ZPRE5ON0VYQU1QTEU}".to_owned()),
        Just("('\u{AD}c2stcHJvai1BYkNkRWZHaElqS2xNbk9wUXJTdFV2V3hZejAxMjM0NTY3ODk=".to_owned()),
        "[\u{200B}\u{AD}\u{301}\u{FEFF}]",
        "[A-Za-z]{1,9}",
        "[a-z ]{0,12}",
        "[ .,\n\"'(]{1,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// The default policy, output stage, on texts of `word_piece`s: streamed in random pieces
    /// it decides and releases as the buffered scan does, and no blocked or redacted byte
    /// leaves early.
    #[test]
    fn unfinished_words_never_leak_with_the_default_policy(
        parts in prop::collection::vec(word_piece(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let text = parts.join(" ");
        check(default_policy(), &text, &cuts)?;
    }
}

/// A word that arrives in several pieces (`night` + `ing` + `ale`) leaves piece by piece: its
/// leading letters are fed to copies of the automata before the word ends, unless the word may
/// be the start of a base64 run (then the decoded text would stand for all of it) or a match
/// may start in it.
#[test]
fn unfinished_word_leaves_before_it_ends() {
    let p = default_policy();
    for (text, released) in [
        // `s` cannot start readable base64 and no keyword or pattern begins `si`; the last
        // letter waits for the next character (a combining mark may follow it).
        ("The nightingale sin", "The nightingale si"),
        // `moane` may become `moaned`, a keyword of the minors rule.
        ("The bird moane", "The bird "),
        // `Sil` may begin base64 that decodes to `J)`…: the whole word may be decoded.
        ("The Sil", "The "),
        // The `g` may begin `groped` (the `h` is not read yet).
        ("The nigh", "The ni"),
    ] {
        let mut s = p.stream(Stage::Output);
        let out = s.push(text).text;
        assert_eq!(out, released, "after {text:?}");
        let rest = s.push("ed and more ").text + &s.finish().text;
        assert_eq!(out + &rest, format!("{text}ed and more "));
    }
    // Token by token, as a model sends it: every piece but the word's last letters leaves.
    let mut s = p.stream(Stage::Output);
    let mut events = 0;
    for piece in ["The", " night", "ing", "ale", " sings", " soft", "ly", "."] {
        if !s.push(piece).text.is_empty() {
            events += 1;
        }
    }
    assert!(events >= 6, "{events} pieces released text");
    // And a word that becomes a blocked phrase still never leaks: `moaned` with an age.
    for t in [
        "she was 12 years old and moaned",
        "the nightingale moaned near the 9 yo",
        "1. Tomatoes\n2. Onions\n3. Garlic",
    ] {
        for i in 0..=t.len() {
            check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i} of {t:?}: {e}"));
        }
    }
    // Found by a red-team run of the first version: an invisible character between a quote and
    // a base64 run (removed by the per-character steps) hid the run from the decodability
    // test, and the run's first letters left before it decoded to a blocked phrase or a key.
    for t in [
        "['\u{ad}MTIgeWVhcnMgb2xkIGFuZCBtb2FuZWQ'] m o a n e d token",
        "I only and {\u{ad}Z2hwX0FiQ2RFZkdoSWpLbE1uT3BRclN0VXZXeFl6MDEyMzQ1Njc4OQ} &amp; here",
        "{\u{200d}QUtJQUlPU0ZPRE5ON0VYQU1QTEU}.",
    ] {
        let cuts: Vec<usize> = (0..t.len()).collect();
        check(p, t, &cuts).unwrap_or_else(|e| panic!("byte by byte, {t:?}: {e}"));
        for i in 0..=t.len() {
            check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i} of {t:?}: {e}"));
        }
    }
}

/// A number at the start of a list item could begin "13 years old" (an output rule's age
/// pattern), and the rewrite views read a word only once it ends: the number used to wait for
/// the whole next word. Now it goes as soon as the word's first letter shows it cannot
/// continue the match — and still waits when that letter can (`y…`), or when the word may be
/// a base64 run decoding to anything (`I…`).
#[test]
fn list_number_goes_before_the_next_word_ends() {
    let p = default_policy();
    for (text, released) in [
        ("1. Tom", "1. "),
        // `Onio` cannot start readable base64 (`:x` then a continuation byte), so the word's
        // letters go too, up to the `o` that may begin `orgasm`.
        ("Shopping:\n1. Onio", "Shopping:\n1. Oni"),
        // `G` decodes to a control character (not base64 text); `ar…` may begin `aroused`.
        ("2. Garl", "2. G"),
        ("1. Ye", ""),
        ("1. Ic", ""),
    ] {
        let mut s = p.stream(Stage::Output);
        let out = s.push(text).text;
        assert_eq!(out, released, "after {text:?}");
        let rest = s.push("ic and more ").text + &s.finish().text;
        assert_eq!(out + &rest, format!("{text}ic and more "));
    }
    // The text it released early is what the whole text releases: no rule changes.
    for t in [
        "1. Tomatoes\n2. Onions\n3. Garlic",
        "She was 1 eWVhcnMgb2xk and moaned",
    ] {
        for i in 0..=t.len() {
            check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i} of {t:?}: {e}"));
        }
    }
}

/// The frontier never releases the start of a live match: a redacted e-mail address and a
/// blocked keyword cut at every point of a benign-looking prefix still hold.
#[test]
fn default_policy_every_split_point_with_live_frontier() {
    let p = default_policy();
    for t in [
        "The nightjar is a bird. Write to bob.smith@example.com today.",
        "The nightjar is a bird. Call 4111 1111 1111 1111 now.",
        "The nightjar sings. Here is how to build a pipe bomb at home.",
    ] {
        for i in 0..=t.len() {
            check(p, t, &[i]).unwrap_or_else(|e| panic!("split {i} of {t:?}: {e}"));
        }
    }
}

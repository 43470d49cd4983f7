//! Unit tests of [`super`]: normalization tables, offsets, incremental use.
use super::*;

fn n(s: &str) -> String {
    normalize(NormalizeOptions::all(), s).text
}

#[test]
fn table() {
    let cases = [
        ("Hello", "hello"),
        ("ＢＯＭＢ", "bomb"),
        ("bo\u{200B}mb", "bomb"),
        ("b\u{00AD}omb", "bomb"),
        ("bоmb", "bomb"),          // Cyrillic о
        ("ΒΟΜΒ", "bomb"),          // Greek capitals
        ("\u{202E}bomb", "bomb"),  // bidi override
        ("bomb\u{E0041}", "bomb"), // tag character
        ("e\u{0301}", "e"),
        ("pi\u{0301}pe bo\u{0308}mb", "pipe bomb"),
        ("Crème brûlée", "creme brulee"),
        ("नमस्ते", "नमस्ते"), // a virama is spelling, not decoration
        ("ﬁre", "fire"),
        ("日本語", "日本語"),
        ("Straße", "straße"),
    ];
    for (input, want) in cases {
        assert_eq!(n(input), want, "input {input:?}");
    }
}

#[test]
fn offsets_point_into_original() {
    let text = "xx ＢＯ\u{200B}МB yy";
    let nt = normalize(NormalizeOptions::all(), text);
    let at = nt.text.find("bomb").expect("normalized");
    let (s, e) = nt.map.orig_span(at, at + 4);
    assert_eq!(&text[s..e], "ＢＯ\u{200B}МB");
}

#[test]
fn incremental_equals_whole() {
    let text = "ab\u{0301}c ＡＢ é\u{0323}\u{0301} 漢字 ok";
    let whole = normalize(NormalizeOptions::all(), text);
    for split in 0..=text.len() {
        if !text.is_char_boundary(split) {
            continue;
        }
        let mut out = String::new();
        let mut map = OffsetMap::default();
        let first = normalize_into(
            NormalizeOptions::all(),
            &text[..split],
            0,
            0,
            false,
            &mut out,
            &mut map,
        );
        let nb = out.len();
        let rest = normalize_into(
            NormalizeOptions::all(),
            &text[first..],
            first,
            nb,
            true,
            &mut out,
            &mut map,
        );
        assert_eq!(first + rest, text.len());
        assert_eq!(out, whole.text, "split at {split}");
    }
}

#[test]
fn leetspeak_is_opt_in_and_keeps_offsets() {
    let text = "P1PE B0MB, ＢＯＭ８, 2024";
    assert_eq!(n(text), "p1pe b0mb, bom8, 2024");
    let leet = NormalizeOptions {
        leetspeak: true,
        ..NormalizeOptions::all()
    };
    let nt = normalize(leet, text);
    assert_eq!(nt.text, "pipe bomb, bomb, 2024");
    assert_eq!(nt.map.orig_span(0, 9), (0, 9));
}

#[test]
fn separators_collapse_runs() {
    let opts = NormalizeOptions::keywords();
    let cases = [
        ("pipe bomb", "pipe bomb"),
        ("pipe  bomb", "pipe bomb"),
        ("pipe\tbomb", "pipe bomb"),
        ("pipe\n\r\nbomb", "pipe bomb"),
        ("pipe\u{0}bomb", "pipe bomb"),
        ("pipe-bomb", "pipe bomb"),
        ("pipe_-_bomb", "pipe bomb"),
        ("pipe.bomb", "pipe bomb"),
        ("pipe\u{2014}bomb", "pipe bomb"),
        ("pipe\u{00A0}\u{200B} bomb", "pipe bomb"),
        ("ＰＩＰＥ－ＢＯＭＢ", "pipe bomb"),
    ];
    for (input, want) in cases {
        let nt = normalize(opts, input);
        assert_eq!(nt.text, want, "input {input:?}");
        assert_eq!(nt.map.orig_span(0, nt.text.len()), (0, input.len()));
    }
    // Runs are cut every 32 characters, so a run's look-ahead is bounded.
    let long = format!("a{}b", "-".repeat(70));
    assert_eq!(normalize(opts, &long).text, "a   b");
}

#[test]
fn incremental_equals_whole_with_every_step() {
    let text = "p i-p\u{0}e  b\u{0301}o.m\u{200B}b \u{3000}ｘ_\tq\n";
    let mut opts = NormalizeOptions::keywords();
    opts.leetspeak = true;
    for opts in [opts, NormalizeOptions::all(), NormalizeOptions::none()] {
        let whole = normalize(opts, text);
        for split in (0..=text.len()).filter(|&s| text.is_char_boundary(s)) {
            let mut out = String::new();
            let mut map = OffsetMap::default();
            let first = normalize_into(opts, &text[..split], 0, 0, false, &mut out, &mut map);
            let nb = out.len();
            let rest = normalize_into(opts, &text[first..], first, nb, true, &mut out, &mut map);
            assert_eq!(first + rest, text.len());
            assert_eq!(out, whole.text, "split at {split}, {opts:?}");
            for (i, c) in out.char_indices() {
                let (s, e) = map.orig_span(i, i + c.len_utf8());
                assert!(e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e));
            }
        }
    }
}

#[test]
fn raw_options_leave_text_alone() {
    let text = "ＢＯ\u{200B}МB";
    assert_eq!(normalize(NormalizeOptions::none(), text).text, text);
}

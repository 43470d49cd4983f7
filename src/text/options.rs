//! Which normalization steps run ([`NormalizeOptions`]) and the limits that bound how far each
//! may look ahead: a leaf of `text`, read by the normalizer, its rewrite steps and the tables.

/// Longest unit, in bytes of normalized text, before the rewrite steps cut it regardless.
pub(crate) const MAX_UNIT_BYTES: usize = 64;
/// Longest base64 or hex run read as one (a longer one is cut there).
pub(super) const MAX_DECODE_BYTES: usize = 4096;

/// The most characters one segment may hold before it is cut regardless (a guard against
/// endless runs of combining marks).
pub(super) const MAX_SEGMENT_CHARS: usize = 32;

/// Which normalization steps to apply.
///
/// More steps may come, so the struct cannot be built with a literal outside this crate:
/// start from [`all`](Self::all), [`none`](Self::none) or `Default` and set fields.
///
/// ```
/// use deliberate::text::{normalize, NormalizeOptions};
///
/// let mut opts = NormalizeOptions::none();
/// opts.casefold = true;
/// // Case folding alone: the fullwidth `Ｂ` becomes a fullwidth `ｂ`, not a Latin `b`.
/// assert_eq!(normalize(opts, "ＢOMB").text, "ｂomb");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct NormalizeOptions {
    /// Unicode NFKC.
    pub nfkc: bool,
    /// Lower-case each character.
    pub casefold: bool,
    /// Drop default-ignorable (invisible) characters.
    pub strip_invisible: bool,
    /// Fold non-Latin look-alikes of Latin letters to those letters.
    pub confusables: bool,
    /// Read digits and symbols written for letters as those letters (`0`→o, `1`→i, `3`→e,
    /// `4`→a, `5`→s, `7`→t, `8`→b, `9`→g, `@`→a, `$`→s) inside a word that has a letter
    /// (`b0mb`, `m3th`, `574b`, `d0`; never `2024`, `3d`, `4k`, `2nd`, `10am`). Off by default;
    /// the shipped policy turns it on for its weapon, drug and jailbreak rules.
    pub leetspeak: bool,
    /// Drop diacritical marks (`é`→e, `p\u{0301}ipe`→pipe, stacked "Zalgo" marks); marks that
    /// spell a script (Indic vowel signs, Hebrew points, Arabic harakat) stay.
    pub strip_marks: bool,
    /// Read any run of white space, control characters, `-`, `_`, `.` and dashes as one space,
    /// so that a keyword `pipe bomb` also matches `pipe-bomb`, `pipe\tbomb`, `pipe  bomb` and
    /// `pipe\u{0}bomb`. Runs are cut every 32 characters (a bounded look-ahead for streams).
    pub separators: bool,
    /// Read emoji and other pictographic symbols (arrows, dingbats, box drawing, geometric
    /// shapes) as separators, so `pipe 💣 bomb` and `pipe💣bomb` read as `pipe bomb`. Takes
    /// effect with [`separators`](Self::separators).
    pub symbols: bool,
    /// Collapse letters spelled one by one: three or more single letters separated by single
    /// spaces or by one punctuation character (`p i p e`, `p.i.p.e`, `p/i/p/e`, `p-i-p-e`)
    /// read as one word; a wider gap (`p i p e  b o m b`) stays a word break.
    pub letter_spacing: bool,
    /// Drop markdown emphasis and code marks (`*`, `` ` ``, `~`, and `_` when separators are
    /// off) in a word: `pi**pe**`, ``b`o`mb``, `bo~~m~~b` and `**bomb**` read as `pipe`, `bomb`.
    pub markup: bool,
    /// Decode HTML character references (`&#98;`, `&#x62;`, `&amp;`, `&nbsp;`) and URL
    /// percent-escapes (`%62%6F%6D%62`, UTF-8 sequences included).
    pub entities: bool,
    /// Decode base64 and base64url runs of at least 16 characters (and up to 4096) that decode
    /// to readable UTF-8 text; the decoded text stands for the whole run.
    pub base64: bool,
    /// Decode runs of at least 16 hex digits (and up to 4096) that decode to readable UTF-8
    /// text; the decoded text stands for the whole run.
    pub hex: bool,
    /// Read the text through ROT13 (an optional view: the rule then sees only the rotated
    /// text, so a rule with this step is a copy of a plain rule).
    pub rot13: bool,
    /// Read each word (each run between white space) backwards after the per-character
    /// steps, punctuation at its edges dropped: `?emoh ta bmob epip` reads
    /// `home at bomb pipe` (an optional view for a rule of its own; other rewrite steps of
    /// the same view are not applied to its words).
    pub reverse: bool,
    /// Join a key-like token split across a line break or a string concatenation
    /// (`"sk-…" + "…"`), so a secret rule matches all of it or nothing.
    pub joins: bool,
    /// Read words run together as words: `makesarin` → `make sarin`, `hireahitman` →
    /// `hire a hitman`, `DoAnythingNow` → `do anything now`. Cuts where the original turns
    /// from lower to upper case, and into words of the policy's own keywords and patterns
    /// (its [`Lexicon`](crate::text::Lexicon)) with function words between them. Off by
    /// default; the shipped policy turns it on for its weapon, drug and jailbreak rules.
    pub segment: bool,
}

impl NormalizeOptions {
    /// The default steps: NFKC, case folding, invisible characters, look-alikes and diacritical
    /// marks (leetspeak and separators are opt-in; keyword leaves get separators by default).
    pub const fn all() -> Self {
        NormalizeOptions {
            nfkc: true,
            casefold: true,
            strip_invisible: true,
            confusables: true,
            leetspeak: false,
            strip_marks: true,
            separators: false,
            symbols: false,
            letter_spacing: false,
            markup: false,
            entities: false,
            base64: false,
            hex: false,
            rot13: false,
            reverse: false,
            joins: false,
            segment: false,
        }
    }

    /// Whether a step after the per-character ones is on (see `rewrite.rs`).
    pub const fn rewrites(self) -> bool {
        self.leetspeak
            || self.letter_spacing
            || self.markup
            || self.entities
            || self.base64
            || self.hex
            || self.rot13
            || self.reverse
            || self.joins
            || self.segment
    }

    /// These options with only their per-character steps: views whose options agree here
    /// share one per-character pass (see [`normalize_rewrites`](crate::text::normalize_rewrites)).
    pub const fn char_steps(self) -> Self {
        let mut o = self;
        o.leetspeak = false;
        o.letter_spacing = false;
        o.markup = false;
        o.entities = false;
        o.base64 = false;
        o.hex = false;
        o.rot13 = false;
        o.reverse = false;
        o.joins = false;
        o.segment = false;
        o
    }

    /// These options without the decoding steps (for the text a decoded run produced).
    pub(super) const fn without_decoders(self) -> Self {
        let mut o = self;
        o.base64 = false;
        o.hex = false;
        o
    }

    /// The default for keyword leaves: [`all`](Self::all) plus [`separators`](Self::separators),
    /// [`symbols`](Self::symbols), [`letter_spacing`](Self::letter_spacing),
    /// [`markup`](Self::markup) and [`entities`](Self::entities).
    pub const fn keywords() -> Self {
        let mut o = Self::all();
        o.separators = true;
        o.symbols = true;
        o.letter_spacing = true;
        o.markup = true;
        o.entities = true;
        o
    }

    /// Longest run of original characters that one normalized unit may still be waiting for:
    /// a segment of combining marks or a run of separators. A stream scanner holds back at
    /// most this many characters (4 bytes each) that the normalizer has not consumed yet.
    pub const fn max_pending_chars(self) -> usize {
        if self.base64 || self.hex {
            MAX_DECODE_BYTES
        } else if self.rewrites() {
            MAX_UNIT_BYTES * 2
        } else {
            MAX_SEGMENT_CHARS
        }
    }

    /// No step: matching on the raw text.
    pub const fn none() -> Self {
        NormalizeOptions {
            nfkc: false,
            casefold: false,
            strip_invisible: false,
            confusables: false,
            leetspeak: false,
            strip_marks: false,
            separators: false,
            symbols: false,
            letter_spacing: false,
            markup: false,
            entities: false,
            base64: false,
            hex: false,
            rot13: false,
            reverse: false,
            joins: false,
            segment: false,
        }
    }
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self::all()
    }
}

//! Text primitives the policy format and the engine share: normalization with an offset map
//! back into the original text, word boundaries, and match validators.
//!
//! This module depends on nothing else in the crate, so it can become its own crate.
//!
//! ```
//! use deliberate::text::{NormalizeOptions, Validator, normalize, whole_word};
//!
//! let n = normalize(NormalizeOptions::all(), "pay ４１１１ 1111 1111 1111");
//! assert_eq!(n.text, "pay 4111 1111 1111 1111");
//! assert!(whole_word(&n.text, 0, 3));
//! assert!(Validator::Luhn.check(&n.text[4..]));
//! ```

mod normalize;
mod offsets;
mod options;
mod tables;
mod validate;
mod words;

pub use normalize::{
    Lexicon, NormText, OffsetMap, RewriteTriggers, normalize, normalize_into, normalize_rewrites,
    normalize_str, normalize_with, rewrite_first_bytes, rewrite_pass_into, rewrite_stable_prefix,
};
pub(crate) use normalize::{has_long_unit, rot13_str};
pub use options::NormalizeOptions;
pub use tables::{fold_confusable, is_invisible, is_separator, is_strippable_mark, is_symbol};
pub use validate::{Validator, iban, luhn};
pub use words::{is_unspaced, is_word_char, whole_word};

//! Checks run on a regex match before it counts: checksums that tell a real card number or
//! IBAN from a run of digits that only looks like one.
//!
//! ```
//! use deliberate::text::Validator;
//!
//! assert!(Validator::Luhn.check("4111 1111 1111 1111"));
//! assert!(!Validator::Luhn.check("4111 1111 1111 1112"));
//! assert!(Validator::Iban.check("GB82 WEST 1234 5698 7654 32"));
//! ```

use serde::Deserialize;

/// A check run on a regex match (`validate:` in a policy file).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Luhn checksum on the digits (payment cards).
    Luhn,
    /// IBAN mod-97 check.
    Iban,
}

impl Validator {
    /// Whether `s` passes this check.
    pub fn check(self, s: &str) -> bool {
        match self {
            Validator::Luhn => luhn(s),
            Validator::Iban => iban(s),
        }
    }
}

/// Luhn checksum over the ASCII digits of `s` (other characters ignored); 12 to 19 digits.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || digits.len() > 19 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// IBAN check (ISO 13616): country letters, check digits, mod 97 == 1. Spaces ignored; case
/// ignored.
pub fn iban(s: &str) -> bool {
    let compact: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    if !compact[..2].iter().all(char::is_ascii_alphabetic)
        || !compact[2..4].iter().all(char::is_ascii_digit)
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(compact[..4].iter());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u32 - '0' as u32,
            l @ 'A'..='Z' => l as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_table() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1234"));
    }

    #[test]
    fn iban_table() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("XX00"));
    }
}

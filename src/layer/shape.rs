//! The structure check of streamed JSON texts (tool-call arguments): a redaction must not
//! change the JSON the client parses.

/// Compares the JSON structure of a streamed view (the scanned text) with that of the released
/// view (after redactions), piece by piece: the released structure must be a prefix of the
/// scanned one. The structure is every character outside strings but whitespace, and each
/// string as one `"` at each end; what is inside strings may differ. Holds only the structure of
/// what was scanned but not yet released.
#[derive(Debug, Default)]
pub(crate) struct ShapeCheck {
    scanned: Shape,
    released: Shape,
    pending: std::collections::VecDeque<char>,
}

#[derive(Debug, Default)]
struct Shape {
    in_string: bool,
    after_backslash: bool,
}

impl Shape {
    fn push(&mut self, view: &str, out: &mut dyn FnMut(char) -> bool) -> bool {
        for c in view.chars() {
            if self.in_string {
                if self.after_backslash {
                    self.after_backslash = false;
                } else if c == '\\' {
                    self.after_backslash = true;
                } else if c == '"' {
                    self.in_string = false;
                    if !out('"') {
                        return false;
                    }
                }
            } else if c == '"' {
                self.in_string = true;
                if !out('"') {
                    return false;
                }
            } else if !c.is_whitespace() && !out(c) {
                return false;
            }
        }
        true
    }
}

impl ShapeCheck {
    /// A piece of what the scanner read.
    pub fn scanned(&mut self, view: &str) {
        let pending = &mut self.pending;
        self.scanned.push(view, &mut |c| {
            pending.push_back(c);
            true
        });
    }

    /// A piece of what the scanner released; `false` when its structure departs from the
    /// scanned one.
    pub fn released(&mut self, view: &str) -> bool {
        let pending = &mut self.pending;
        self.released
            .push(view, &mut |c| pending.pop_front() == Some(c))
    }

    /// The text is over: both structures must be complete and equal.
    pub fn finished(&self) -> bool {
        self.pending.is_empty() && self.scanned.in_string == self.released.in_string
    }
}

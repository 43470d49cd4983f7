//! Progress of the answers on stderr: an `indicatif` bar when stderr is a terminal; otherwise
//! (a log file, CI) one plain line every 5 % of the answers or every 10, whichever is rarer,
//! and the last one, never a carriage return.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Counts answers as they arrive and shows how far the run is.
pub(super) struct Progress {
    total: usize,
    done: usize,
    cached: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress over `total` answers, drawn as a bar when stderr is a terminal.
    pub(super) fn new(total: usize) -> Progress {
        Progress::with_bar(total, std::io::stderr().is_terminal())
    }

    fn with_bar(total: usize, bar: bool) -> Progress {
        let bar = (bar && total > 0).then(|| {
            // `wide_bar` takes the width the rest leaves, so the line never wraps.
            let style = ProgressStyle::with_template(
                "[eval] {pos}/{len} answers {wide_bar} {eta} left, {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(total as u64).with_style(style)
        });
        Progress {
            total,
            done: 0,
            cached: 0,
            bar,
        }
    }

    /// How many answers apart the plain lines are: 5 % of the total, at least 10.
    fn step(&self) -> usize {
        self.total.div_ceil(20).max(10)
    }

    /// One answer arrived (`cached`: from the cache). Returns the plain line printed, if any.
    pub(super) fn add(&mut self, cached: bool) -> Option<String> {
        self.done += 1;
        self.cached += usize::from(cached);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} cached", self.cached));
            bar.inc(1);
            if self.done == self.total {
                bar.finish();
            }
            return None;
        }
        if self.done % self.step() != 0 && self.done != self.total {
            return None;
        }
        let line = format!(
            "[eval] {}/{} answers ({} cached)",
            self.done, self.total, self.cached
        );
        eprintln!("{line}");
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_every_five_percent_or_ten_answers() {
        let lines = |total: usize| {
            let mut p = Progress::with_bar(total, false);
            (0..total)
                .filter_map(|i| p.add(i % 2 == 0))
                .collect::<Vec<_>>()
        };
        // 8 answers: only the last line (10 answers apart is rarer than 5 %).
        assert_eq!(lines(8), ["[eval] 8/8 answers (4 cached)"]);
        // 45: every 10, and the last.
        assert_eq!(lines(45).len(), 5);
        // 1,000: every 50 (5 %), so 20 lines.
        let l = lines(1000);
        assert_eq!(l.len(), 20);
        assert_eq!(l[0], "[eval] 50/1000 answers (25 cached)");
        assert!(l.iter().all(|l| !l.contains('\r')));
    }
}

//! Input enforcement, whatever the API: scan every text the model will read (the adapter lists
//! them), redact or refuse, then inject the spec once where the adapter places it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::chain::PolicyFinding;
use super::exchange::Exchange;
use super::input_scan::InputScan;
use crate::engine::CompiledPolicy;
use crate::engine::inject;
use crate::policy::InjectRole;
use crate::wire::WireError;

/// What to do with the request.
#[derive(Debug)]
pub(crate) enum Input {
    /// Forward this body.
    Forward(Bytes),
    /// Refuse: the blocking finding.
    Block(PolicyFinding),
    /// Refuse: scanning the request would cost more than the scan budget (`spent` normalized
    /// bytes with the text that crossed it).
    OverBudget {
        /// What the request would have spent.
        spent: usize,
    },
}

/// Reads, scans and rewrites a request through the exchange's adapter.
pub(crate) fn enforce(body: Bytes, ex: &mut Exchange) -> Result<Input, WireError> {
    let mut req = ex.adapter.request(&body)?;
    ex.facts = req.facts();
    ex.record.model = (!ex.facts.model.is_empty()).then(|| ex.facts.model.clone());
    ex.record.stream = ex.facts.stream;

    let set = ex.set.clone();
    let policies = set.policies();

    // 1. Earlier injections of these policies (a retry, a gateway in front) are taken out and
    //    rendered afresh below, so the model reads the spec exactly once. A marker without its
    //    end marker cannot be taken out safely: that policy is not injected again.
    let mut skip = vec![false; policies.len()];
    // Whether the client sent instruction text of its own (then a model's default system
    // prompt is not added: its chat template would not have added it either).
    let mut instructed = false;
    let replaced = req.instructions(&mut |text: &mut String| {
        let mut changed = false;
        for (pi, p) in policies.iter().enumerate() {
            match strip_injection(text, p) {
                Stripped::Removed(rest) => {
                    *text = rest;
                    changed = true;
                }
                Stripped::Unterminated => skip[pi] = true,
                Stripped::None => {}
            }
        }
        instructed |= !text.trim().is_empty();
        changed
    });
    let mut changed = replaced;

    // 2. Scan what the model reads, per role; redact in place; stop at a block.
    let mut scan = InputScan::new(ex);
    req.texts(&mut scan);
    let InputScan {
        fired,
        block,
        changed: redacted,
        over_budget,
        ..
    } = scan;
    if let Some(spent) = over_budget {
        return Ok(Input::OverBudget { spent });
    }
    if let Some(b) = block {
        return Ok(Input::Block(b));
    }
    changed |= redacted;

    // 3. Inject.
    let opts = &ex.shared.opts;
    let mut picks = Vec::new();
    // The sections chosen, as `PolicySet::injection` keys them; `None` if one is not found in
    // its policy (then the text is rendered without the set's cache).
    let mut key: Option<Vec<u32>> = Some(Vec::new());
    let mut injected_ids: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (pi, p) in policies.iter().enumerate() {
        if skip[pi] {
            skipped.push(p.label());
            continue;
        }
        let fired_ref: Vec<&str> = fired[pi].iter().map(String::as_str).collect();
        let chosen = inject::choose(p, opts.inject_mode.unwrap_or(p.spec.inject), &fired_ref);
        if chosen.is_empty() {
            continue;
        }
        for s in &chosen {
            injected_ids.push(if policies.len() > 1 {
                format!("{}/{}", p.name, s.id)
            } else {
                s.id.clone()
            });
        }
        if let Some(k) = key.as_mut() {
            k.push(pi as u32);
            for s in &chosen {
                match p.spec.sections.iter().position(|x| std::ptr::eq(x, *s)) {
                    Some(i) => k.push(i as u32),
                    None => {
                        key = None;
                        break;
                    }
                }
            }
            if let Some(k) = key.as_mut() {
                k.push(u32::MAX);
            }
        }
        picks.push((pi, chosen));
    }
    let render = || {
        picks
            .iter()
            .map(|(pi, chosen)| inject::render(&policies[*pi], chosen))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let text: std::sync::Arc<str> = match &key {
        _ if picks.is_empty() => "".into(),
        Some(k) => set.injection(k, render),
        None => render().into(),
    };
    let head = match opts.default_system_for(&ex.facts.model) {
        Some(h) if !instructed && !text.is_empty() => Some(h),
        _ => None,
    };
    let text: std::sync::Arc<str> = match head {
        Some(h) => inject::with_head(&text, h).into(),
        None => text,
    };
    let role = opts
        .inject_role
        .or_else(|| policies.first().map(|p| p.spec.role))
        .unwrap_or_default();
    if !picks.is_empty() || replaced || !skipped.is_empty() {
        ex.record.injection = Some(super::audit::Injection {
            sections: injected_ids,
            bytes: text.len(),
            role: (!text.is_empty()).then(|| {
                match role {
                    InjectRole::System => "system",
                    InjectRole::Developer => "developer",
                }
                .to_owned()
            }),
            placement: (!text.is_empty()).then(|| opts.placement.as_str().to_owned()),
            replaced,
            skipped,
            default_system: head.is_some(),
        });
        if !text.is_empty() {
            req.place_spec(text.to_string(), role, opts.placement);
            changed = true;
        }
    }

    if !changed {
        return Ok(Input::Forward(body));
    }
    req.to_bytes().map(Input::Forward)
}

/// The start of any version's marker / end marker of `p`: `(start, end)` prefixes, each
/// completed by `<hash>]` (see [`inject::marker`], [`inject::end_marker`]).
fn marker_prefixes(p: &CompiledPolicy) -> (String, String) {
    (
        format!("[deliberate policy {}@", p.name),
        format!("[end of deliberate policy {}@", p.name),
    )
}

enum Stripped {
    None,
    Removed(String),
    Unterminated,
}

/// Removes every injected block of `p` (any version) from `text`.
fn strip_injection(text: &str, p: &CompiledPolicy) -> Stripped {
    // Every marker starts so: most texts carry none, and need no marker formatted.
    if !text.contains("[deliberate policy ") {
        return Stripped::None;
    }
    let (start, end) = marker_prefixes(p);
    if !text.contains(&start) {
        return Stripped::None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut removed = false;
    while let Some(s) = rest.find(&start) {
        let Some(e_rel) = rest[s..].find(&end) else {
            return if removed {
                Stripped::Removed(out + rest)
            } else {
                Stripped::Unterminated
            };
        };
        let e = s + e_rel + end.len();
        let Some(close) = rest[e..].find(']') else {
            return if removed {
                Stripped::Removed(out + rest)
            } else {
                Stripped::Unterminated
            };
        };
        out.push_str(&rest[..s]);
        let mut after = &rest[e + close + 1..];
        // The separator `place` added.
        after = after.strip_prefix("\n\n").unwrap_or(after);
        rest = after;
        removed = true;
    }
    out.push_str(rest);
    Stripped::Removed(out)
}

/// The input scan's result of a request waiting in a slot, filled by the offloaded job.
#[derive(Clone, Default)]
pub(crate) struct ScanSlot(Arc<Mutex<Option<Scanned>>>);

type Scanned = (Box<Exchange>, Result<Input, WireError>);

impl ScanSlot {
    pub(crate) fn put(&self, ex: Box<Exchange>, res: Result<Input, WireError>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some((ex, res));
        }
    }

    pub(crate) fn take(&self) -> Option<Scanned> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

/// The head of the request forwarded upstream: the (possibly rewritten) body's length, and
/// no compression, since the gateway must read what the upstream answers.
pub(crate) fn forward_head(headers: &mut http::HeaderMap, len: usize) {
    use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefixes that find an earlier injection are those of the markers `inject` writes.
    #[test]
    fn marker_prefixes_match_the_written_markers() {
        let p = CompiledPolicy::from_yaml_str("policy: m\n", "m.yaml").expect("compiles");
        let (start, end) = marker_prefixes(&p);
        assert_eq!(inject::marker(&p), format!("{start}{}]", p.hash));
        assert_eq!(inject::end_marker(&p), format!("{end}{}]", p.hash));
    }
}

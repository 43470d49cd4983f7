//! Output enforcement of a buffered answer: the adapter hands every text of it to an
//! [`OutputFilter`].

use std::ops::ControlFlow;

use bytes::Bytes;
use serde_json::Value;

use super::error::Fault;
use super::exchange::Exchange;
use super::filter::{FilterState, OutputFilter};
use crate::wire::walk;
use crate::wire::{Answer, Channel, ChannelKind, ErrorInfo, ErrorKind, TextFilter, Verdict};

/// Scans and rewrites an upstream answer.
pub(crate) fn enforce(body: &Bytes, ex: &mut Exchange) -> Result<Answer, Fault> {
    filter_answer(body, ex, FilterState::default())
}

/// Re-encodes an upstream answer with every unit replaced by `refusal` (the judge refused
/// it after the rules let it pass).
pub(crate) fn refuse(body: &Bytes, ex: &mut Exchange, refusal: String) -> Result<Answer, Fault> {
    filter_answer(body, ex, FilterState::refusing(refusal))
}

/// Hands the answer to the adapter with an [`OutputFilter`] in `state`.
fn filter_answer(body: &Bytes, ex: &mut Exchange, mut state: FilterState) -> Result<Answer, Fault> {
    let adapter = ex.adapter;
    let mut filter = OutputFilter {
        ex,
        state: &mut state,
    };
    adapter
        .answer(body, &mut filter)
        .map_err(|e| Fault::unreadable("response body", &e))
}

/// The body of an upstream error status. Its strings may quote the request or the model's
/// text, so each is scanned like output; a redaction rewrites it, a block (or a body that
/// cannot be read as text) replaces the whole body with the gateway's own error.
pub(crate) fn enforce_error(body: &Bytes, ex: &mut Exchange) -> Bytes {
    if body.is_empty() {
        return body.clone();
    }
    let adapter = ex.adapter;
    let mut state = FilterState::default();
    let mut filter = OutputFilter {
        ex,
        state: &mut state,
    };
    const QUOTED: &str =
        "the upstream's error message was withheld: it quoted text the policy does not allow";
    const UNREADABLE: &str = "the upstream's error message was withheld: the gateway could not \
         read it as a client would (not strict JSON, or not text)";
    let withheld_as = |filter: &mut OutputFilter<'_>, why: &str| {
        let info = ErrorInfo::new(ErrorKind::Upstream, why, "upstream_error_withheld");
        filter.ex.partial("upstream error body withheld");
        Bytes::from(adapter.error_body(&info).to_string())
    };
    let withheld = |filter: &mut OutputFilter<'_>| withheld_as(filter, QUOTED);
    // An escalation in an error body is not judged: the body is withheld instead.
    let escalated = |filter: &mut OutputFilter<'_>| !filter.ex.judge_jobs.is_empty();
    match crate::wire::parse_strict(body) {
        Ok(mut v) => match scan_value(&mut filter, "error", &mut v) {
            _ if escalated(&mut filter) => withheld(&mut filter),
            None => body.clone(),
            Some(false) => Bytes::from(v.to_string()),
            Some(true) => withheld(&mut filter),
        },
        // JSON the strict parser refuses (a repeated key, deep nesting, a byte order mark) is
        // still JSON to a client, which decodes its escapes (`\u0062omb`) where a text scan
        // would not: withheld. So is any other body with a backslash in it: an SSE error stream
        // (`data: {"error":…"\u0062omb"}`) is JSON to a client that parses events whatever the
        // status. Plain-text and HTML error pages are scanned as text.
        Err(_) if looks_like_json(body) || body.contains(&b'\\') => {
            withheld_as(&mut filter, UNREADABLE)
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => match filter.scan(&Channel::new(ChannelKind::Other, 0, "error"), text) {
                _ if escalated(&mut filter) => withheld(&mut filter),
                Verdict::Send(t) if t == text => body.clone(),
                Verdict::Send(t) => Bytes::from(t),
                Verdict::Strip | Verdict::Block { .. } => withheld(&mut filter),
            },
            Err(_) => withheld_as(&mut filter, UNREADABLE),
        },
    }
}

/// Whether a body the strict parser refused starts like JSON (after a byte order mark and
/// white space), so that a client would read it as JSON.
fn looks_like_json(body: &[u8]) -> bool {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"')
    )
}

/// Every object key inside `v`, with its path.
fn keys(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, e) in m {
                let at = format!("{path}.{k}");
                out.push((at.clone(), k.clone()));
                keys(e, &at, out);
            }
        }
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                keys(e, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Scans every string of `v`, and every object key: `None` when nothing changed, `Some(true)`
/// on a block (a stripped string counts as one: the body is withheld; so does any change to
/// a key), `Some(false)` when something was redacted.
fn scan_value(filter: &mut OutputFilter<'_>, path: &str, v: &mut Value) -> Option<bool> {
    let mut names = Vec::new();
    keys(v, path, &mut names);
    for (at, k) in names {
        match filter.scan(&Channel::new(ChannelKind::Other, 0, at), &k) {
            Verdict::Send(t) if t == k => {}
            _ => return Some(true),
        }
    }
    let mut out = None;
    let flow = walk::strings(v, path, &[], &mut |s, loc| match filter
        .scan(&Channel::new(ChannelKind::Other, 0, loc), s)
    {
        Verdict::Send(t) if t == *s => ControlFlow::Continue(()),
        Verdict::Send(t) => {
            *s = t;
            out = Some(false);
            ControlFlow::Continue(())
        }
        Verdict::Strip | Verdict::Block { .. } => ControlFlow::Break(()),
    });
    if flow.is_break() { Some(true) } else { out }
}

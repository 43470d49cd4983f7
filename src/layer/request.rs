//! Input enforcement: scan every text the model will read, redact or refuse, then inject the
//! spec once.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::chain::{self, ChainDecision, PolicyFinding};
use super::exchange::Exchange;
use super::options::Placement;
use super::policies::PolicySet;
use crate::engine::CompiledPolicy;
use crate::engine::inject;
use crate::openai::{
    ChatRequest, Content, ContentPart, Message, Nullable, WireError, parse_strict_as,
};
use crate::policy::InjectRole;
use crate::policy::{Action, Stage};

/// What to do with the request.
#[derive(Debug)]
pub(crate) enum Input {
    /// Forward this body.
    Forward(Bytes),
    /// Refuse: the blocking finding.
    Block(PolicyFinding),
}

/// The input scan of `text` for `role`, from the layer's scan cache when it has it.
fn scan_input(ex: &Exchange, set: &PolicySet, text: &str, role: &str) -> Arc<ChainDecision> {
    let scan = || chain::scan(set, text, Stage::Input, Some(role));
    match &ex.shared.scan_cache {
        Some(cache) => cache.get_or_scan(set.id(), role, text, scan),
        None => Arc::new(scan()),
    }
}

/// Reads, scans and rewrites a chat completion request.
pub(crate) fn enforce(body: Bytes, ex: &mut Exchange) -> Result<Input, WireError> {
    let mut req: ChatRequest = parse_strict_as(&body)?;
    ex.stream = req.is_stream();
    ex.n = req.choice_count().clamp(1, 128);
    ex.include_usage = req.include_usage();
    ex.model = req.model.get().cloned().unwrap_or_default();
    ex.record.model = req.model.get().cloned();
    ex.record.stream = ex.stream;

    let set = ex.set.clone();
    let policies = set.policies();
    let mut changed = false;

    // 1. Earlier injections of these policies (a retry, a gateway in front) are taken out and
    //    rendered afresh below, so the model reads the spec exactly once. A marker without its
    //    end marker cannot be taken out safely: that policy is not injected again.
    let mut skip = vec![false; policies.len()];
    let mut replaced = false;
    for m in req
        .messages
        .iter_mut()
        .filter(|m| is_instruction_role(&m.role))
    {
        for text in m.text_parts_mut() {
            for (pi, p) in policies.iter().enumerate() {
                match strip_injection(text, p) {
                    Stripped::Removed(rest) => {
                        *text = rest;
                        replaced = true;
                        changed = true;
                    }
                    Stripped::Unterminated => skip[pi] = true,
                    Stripped::None => {}
                }
            }
        }
    }
    if replaced {
        drop_emptied(&mut req.messages);
    }

    // 2. Scan what the model reads, per role; redact in place; stop at a block.
    let mut fired: Vec<Vec<String>> = vec![Vec::new(); policies.len()];
    let mut non_text = false;
    for (mi, m) in req.messages.iter_mut().enumerate() {
        let role = m.role.clone();
        if let Nullable::Present(Content::Parts(parts)) = &m.content {
            non_text |= parts.iter().any(|p| !p.is_text());
        }
        for (ti, text) in m.text_parts_mut().enumerate() {
            let d = scan_input(ex, &set, text, &role);
            note(ex, &d.findings, &mut fired, || {
                format!("messages[{mi}].content[{ti}]")
            });
            if let Some(b) = &d.block {
                return Ok(Input::Block(b.clone()));
            }
            // Section triggers came out of the same scan: no second pass to choose sections.
            for (pi, section) in &d.triggered {
                if !fired[*pi].contains(section) {
                    fired[*pi].push(section.clone());
                }
            }
            if d.action == Action::Redact && d.output != *text {
                text.clone_from(&d.output);
                changed = true;
            }
        }
        // Tool calls of earlier assistant turns are read by the model too.
        if let Some(Value::Array(calls)) = m.extra.get_mut("tool_calls") {
            for (ci, call) in calls.iter_mut().enumerate() {
                if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                    let d = scan_input(ex, &set, args, &role);
                    note(ex, &d.findings, &mut fired, || {
                        format!("messages[{mi}].tool_calls[{ci}].arguments")
                    });
                    if let Some(b) = &d.block {
                        return Ok(Input::Block(b.clone()));
                    }
                    if d.action == Action::Redact && d.output != *args {
                        args.clone_from(&d.output);
                        changed = true;
                    }
                }
            }
        }
    }
    if non_text {
        ex.partial("non-text content parts not scanned");
    }

    // 3. Inject.
    let opts = &ex.shared.opts;
    let mut blocks: Vec<String> = Vec::new();
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
        blocks.push(inject::render(p, &chosen));
    }
    let role = opts
        .inject_role
        .or_else(|| policies.first().map(|p| p.spec.role))
        .unwrap_or_default();
    let role_name = match role {
        InjectRole::System => "system",
        InjectRole::Developer => "developer",
    };
    if !blocks.is_empty() || replaced || !skipped.is_empty() {
        let text = blocks.join("\n\n");
        ex.record.injection = Some(super::audit::Injection {
            sections: injected_ids,
            bytes: text.len(),
            role: (!text.is_empty()).then(|| role_name.to_owned()),
            placement: (!text.is_empty()).then(|| {
                match opts.placement {
                    Placement::Prepend => "prepend",
                    Placement::Merge => "merge",
                }
                .to_owned()
            }),
            replaced,
            skipped,
        });
        if !text.is_empty() {
            place(&mut req.messages, text, role_name, opts.placement);
            changed = true;
        }
    }

    if !changed {
        return Ok(Input::Forward(body));
    }
    match serde_json::to_vec(&req) {
        Ok(v) => Ok(Input::Forward(Bytes::from(v))),
        Err(e) => Err(WireError::Shape {
            message: e.to_string(),
        }),
    }
}

fn note(
    ex: &mut Exchange,
    findings: &[PolicyFinding],
    fired: &mut [Vec<String>],
    location: impl Fn() -> String,
) {
    for pf in findings {
        if pf.1.action != Action::Allow
            && let Some(s) = &pf.1.section
            && !fired[pf.0].contains(s)
        {
            fired[pf.0].push(s.clone());
        }
        ex.finding(pf, &location);
    }
}

fn is_instruction_role(role: &str) -> bool {
    role == "system" || role == "developer"
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

/// Drops messages and parts that held nothing but a removed injection.
fn drop_emptied(messages: &mut Vec<Message>) {
    for m in messages.iter_mut() {
        if let Nullable::Present(Content::Parts(parts)) = &mut m.content {
            parts.retain(|p| !(p.is_text() && p.text.get().is_some_and(String::is_empty)));
        }
    }
    messages.retain(|m| {
        !is_instruction_role(&m.role)
            || match &m.content {
                Nullable::Present(Content::Text(t)) => !t.is_empty(),
                Nullable::Present(Content::Parts(p)) => !p.is_empty(),
                _ => true,
            }
    });
}

/// Puts the injected `text` into the conversation.
fn place(messages: &mut Vec<Message>, text: String, role: &str, placement: Placement) {
    if placement == Placement::Merge
        && let Some(m) = messages.iter_mut().find(|m| is_instruction_role(&m.role))
    {
        match &mut m.content {
            Nullable::Present(Content::Text(t)) => {
                *t = if t.is_empty() {
                    text
                } else {
                    format!("{text}\n\n{t}")
                };
            }
            Nullable::Present(Content::Parts(parts)) => parts.insert(0, ContentPart::text(text)),
            c => *c = Nullable::Present(Content::Text(text)),
        }
        return;
    }
    messages.insert(0, Message::new(role, text));
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

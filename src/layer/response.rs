//! Output enforcement of a buffered (non-streamed) chat completion: every choice, its content,
//! refusal, tool-call arguments and reasoning fields.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::audit::Deliberation;
use super::chain;
use super::deliberation::DeliberationStripper;
use super::error::Fault;
use super::exchange::Exchange;
use super::options::ReasoningMode;
use crate::engine::apply_redactions;
use crate::openai::chunking::CONTENT_FILTER;
use crate::openai::{ChatCompletion, Nullable, ResponseMessage, parse_strict_as};
use crate::policy::{Action, Stage};

/// Scans and rewrites an upstream chat completion. Returns the body to send, and whether every
/// choice was blocked.
pub(crate) fn enforce(body: &Bytes, ex: &mut Exchange) -> Result<(Bytes, bool), Fault> {
    let mut resp: ChatCompletion =
        parse_strict_as(body).map_err(|e| Fault::Protocol(format!("response body: {e}")))?;
    let set = ex.set.clone();
    let reasoning = ex.shared.opts.reasoning;
    let max_delib = ex.shared.opts.max_audit_deliberation_bytes;
    let mut changed = false;
    let mut blocked_choices = 0;
    for choice in resp.choices.iter_mut() {
        let ci = choice.index;
        let Some(msg) = choice.message.get_mut() else {
            continue;
        };
        let mut block: Option<String> = None;
        let mut modified = false;

        // Content, with the deliberation block taken out first.
        if let Some(text) = msg.content.get_mut() {
            let mut visible = text.clone();
            for p in set.policies() {
                if let Some(tag) = &p.spec.deliberation_tag {
                    let mut s = DeliberationStripper::new(tag, max_delib);
                    let mut v = s.push(&visible);
                    v.push_str(&s.finish());
                    if s.blocks() > 0 {
                        ex.record.deliberation.push(Deliberation {
                            choice: ci,
                            text: mask_deliberation(ex, s.hidden()),
                            truncated: s.truncated(),
                        });
                        visible = v;
                    }
                }
            }
            if visible != *text {
                *text = visible;
                modified = true;
            }
            block = scan_field(ex, text, Stage::Output, &mut modified, || {
                format!("choices[{ci}].content")
            });
        }
        if block.is_none()
            && let Some(text) = msg.refusal.get_mut()
        {
            block = scan_field(ex, text, Stage::Output, &mut modified, || {
                format!("choices[{ci}].refusal")
            });
        }
        if block.is_none()
            && let Some(calls) = msg.tool_calls.get_mut()
        {
            for (ti, call) in calls.iter_mut().enumerate() {
                if let Some(args) = call.function.get_mut().and_then(|f| f.arguments.get_mut()) {
                    block = scan_field(ex, args, Stage::Output, &mut modified, || {
                        format!("choices[{ci}].tool_calls[{ti}].arguments")
                    });
                    if block.is_some() {
                        break;
                    }
                }
            }
        }
        if block.is_none()
            && let Some(Value::String(args)) = msg
                .extra
                .get_mut("function_call")
                .and_then(|f| f.get_mut("arguments"))
        {
            block = scan_field(ex, args, Stage::Output, &mut modified, || {
                format!("choices[{ci}].function_call.arguments")
            });
        }
        if block.is_none() {
            for (name, field) in [
                ("reasoning_content", &mut msg.reasoning_content),
                ("reasoning", &mut msg.reasoning),
            ] {
                if field.is_absent() || field.is_null() {
                    continue;
                }
                match reasoning {
                    ReasoningMode::Pass => ex.partial("reasoning not scanned"),
                    ReasoningMode::Strip => {
                        *field = Nullable::Absent;
                        modified = true;
                    }
                    ReasoningMode::Scan => {
                        if let Some(text) = field.get_mut() {
                            block = scan_field(ex, text, Stage::Reasoning, &mut modified, || {
                                format!("choices[{ci}].{name}")
                            });
                            if block.is_some() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        if msg.extra.contains_key("audio") {
            ex.partial("audio output not scanned");
        }
        if let Some(refusal) = block {
            blocked_choices += 1;
            choice.message = Nullable::Present(ResponseMessage {
                role: Nullable::Present("assistant".to_owned()),
                content: Nullable::Present(refusal),
                refusal: Nullable::Null,
                tool_calls: Nullable::Absent,
                reasoning_content: Nullable::Absent,
                reasoning: Nullable::Absent,
                extra: Map::new(),
            });
            choice.finish_reason = Nullable::Present(CONTENT_FILTER.to_owned());
            modified = true;
        }
        if modified {
            changed = true;
            // Log probabilities carry the tokens of the original text.
            if let Some(lp) = choice.extra.get_mut("logprobs")
                && !lp.is_null()
            {
                *lp = Value::Null;
            }
        }
    }
    let all_blocked = !resp.choices.is_empty() && blocked_choices == resp.choices.len();
    if !changed {
        // Nothing was rewritten: the upstream's own bytes go on.
        return Ok((body.clone(), false));
    }
    let out = serde_json::to_vec(&resp).map_err(|e| Fault::Protocol(e.to_string()))?;
    Ok((Bytes::from(out), all_blocked))
}

/// Scans one field in place; returns the refusal text when it blocks.
fn scan_field(
    ex: &mut Exchange,
    text: &mut String,
    stage: Stage,
    modified: &mut bool,
    loc: impl Fn() -> String,
) -> Option<String> {
    let set = ex.set.clone();
    let d = chain::scan(&set, text, stage, None);
    for f in &d.findings {
        ex.finding(f, &loc);
    }
    if let Some((pi, f)) = &d.block {
        let policy = &set.policies()[*pi];
        return Some(policy.refusal_for(policy.rule(&f.rule)));
    }
    if d.action == Action::Redact && d.output != *text {
        *text = d.output;
        *modified = true;
    }
    None
}

/// A deliberation block for the audit log: redactions of the output stage applied.
pub(crate) fn mask_deliberation(ex: &Exchange, text: &str) -> String {
    let mut out = text.to_owned();
    for p in ex.set.policies() {
        let d = p.scan(&out, Stage::Output, None);
        if d.findings.iter().any(|f| f.action == Action::Redact) {
            out = apply_redactions(&out, &d.findings, |id| p.replacement(id));
        }
    }
    out
}

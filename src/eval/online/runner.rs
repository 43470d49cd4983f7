//! The run: builds both arms' requests for every input-stage labeled prompt, fetches the answers
//! (from the cache or the model, `--concurrency` at a time) and counts them per arm.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use super::cache::{Cache, fnv1a};
use super::client::{Answer, Upstream};
use super::gateway::start_gateway;
use super::progress::Progress;
use super::report::{CaseAnswers, Outcome};
use super::{ARMS, ArmReport, OnlineConfig, OnlineError, OnlineReport, Route};
use crate::engine::CompiledPolicy;
use crate::engine::inject;
use crate::eval::dataset::{Content, Dataset, Label};
use crate::eval::refusal_detector::RefusalDetector;
use crate::policy::InjectRole;
use crate::policy::{Action, Stage};

struct Job {
    arm: usize,
    /// Index into the run's [`CaseAnswers`].
    case: usize,
    label: Label,
    /// Input blocked: the refusal, no request.
    blocked: bool,
    injected_chars: usize,
    body: Option<(String, Bytes)>,
    input_redacted: bool,
}

/// Runs every input-stage labeled prompt through the model in both arms.
pub async fn run(
    policy: &CompiledPolicy,
    detector: &RefusalDetector,
    datasets: &[Dataset],
    cfg: &OnlineConfig,
) -> Result<OnlineReport, OnlineError> {
    let cache = Arc::new(Cache::open(&cfg.cache)?);
    // Gateways live until the end of the run: dropping `_stop` shuts them down.
    let (upstreams, _stop) = match cfg.route {
        Route::Direct => {
            let u = Arc::new(Upstream::new(&cfg.upstream, cfg)?);
            (vec![u.clone(), u], Vec::new())
        }
        Route::Gateway => {
            let mut ups = Vec::new();
            let mut stops = Vec::new();
            for arm in 0..ARMS.len() {
                let (addr, stop) = start_gateway(cfg, arm == 1).await?;
                ups.push(Arc::new(Upstream::new(&format!("http://{addr}"), cfg)?));
                stops.push(stop);
            }
            (ups, stops)
        }
    };
    let mut report = OnlineReport {
        upstream: cfg.upstream.clone(),
        route: cfg.route,
        model: cfg.model.clone(),
        detector: detector.label(),
        policy: policy.label(),
        arms: ARMS
            .iter()
            .map(|a| ArmReport {
                name: (*a).to_owned(),
                ..ArmReport::default()
            })
            .collect(),
        notes: Vec::new(),
        cases: Vec::new(),
        examples: cfg.examples,
    };
    if matches!(policy.spec.inject, crate::policy::InjectMode::Off) {
        report
            .notes
            .push("the policy has `inject: off`: both arms are the same".into());
    }
    match &cfg.system {
        Some(sys) => report.notes.push(format!(
            "both arms send the client system message {sys:?} before each prompt (--system)"
        )),
        None => match &cfg.default_system {
            Some(d) => report.notes.push(format!(
                "no client system message (--system); the spec arm's injection starts with the \
                 model's default system prompt {d:?} (--default-system), which the no-spec arm \
                 gets from the chat template"
            )),
            None => report.notes.push(
                "no client system message (--system): the spec arm's injected system message \
                 takes the place of the chat template's default system prompt, which the no-spec \
                 arm keeps (--default-system keeps it)"
                    .into(),
            ),
        },
    }
    let role = match policy.spec.role {
        InjectRole::System => "system",
        InjectRole::Developer => "developer",
    };
    let mut jobs = Vec::new();
    for ds in datasets {
        let Content::Cases(cases) = &ds.content else {
            continue;
        };
        let inputs: Vec<_> = cases.iter().filter(|c| c.stage == Stage::Input).collect();
        if inputs.len() < cases.len() {
            report.notes.push(format!(
                "{}: {} output-stage cases not sent (nothing to ask the model)",
                ds.name,
                cases.len() - inputs.len()
            ));
        }
        let take = cfg.limit.unwrap_or(usize::MAX).min(inputs.len());
        if take < inputs.len() {
            report.notes.push(format!(
                "{}: {take} of {} prompts, evenly spaced through the file (--limit)",
                ds.name,
                inputs.len()
            ));
        }
        // Evenly spaced, so that a small run still covers a file sorted by label or category.
        let picked = (0..take).map(|i| inputs[i * inputs.len() / take]);
        for c in picked {
            let d = policy.scan(&c.text, Stage::Input, Some("user"));
            let blocked = d.action == Action::Block;
            let chosen = inject::choose(policy, policy.spec.inject, &d.relevant_sections());
            let injection = (!chosen.is_empty()).then(|| {
                let text = inject::render(policy, &chosen);
                match (&cfg.default_system, &cfg.system) {
                    (Some(head), None) => inject::with_head(&text, head),
                    _ => text,
                }
            });
            let case = report.cases.len();
            report.cases.push(CaseAnswers {
                prompt: c.text.clone(),
                label: c.label,
                sections: chosen.iter().map(|s| s.id.clone()).collect(),
                arms: vec![Outcome::default(); ARMS.len()],
            });
            // Direct route: the user message as the gateway forwards it, redactions applied.
            // Gateway route: the client's message; the gateway redacts and injects.
            let user_text = if d.action == Action::Redact && cfg.route == Route::Direct {
                d.output.clone()
            } else {
                c.text.clone()
            };
            for (arm, arm_name) in ARMS.iter().enumerate() {
                let inj = if arm == 0 { injection.as_deref() } else { None };
                let mut messages = Vec::new();
                if let (Some(t), Route::Direct) = (inj, cfg.route) {
                    messages.push(json!({"role": role, "content": t}));
                }
                if let Some(sys) = &cfg.system {
                    messages.push(json!({"role": "system", "content": sys}));
                }
                messages.push(json!({"role": "user", "content": user_text}));
                let body = json!({
                    "model": cfg.model,
                    "messages": messages,
                    "max_tokens": cfg.max_tokens,
                    "temperature": 0,
                });
                let bytes = Bytes::from(body.to_string());
                // The gateway route's answers depend on the arm and the policy, not only on
                // what the client sent.
                let route = match cfg.route {
                    Route::Direct => String::new(),
                    Route::Gateway => format!("gateway\u{0}{arm_name}\u{0}{}", policy.hash),
                };
                let key = fnv1a(
                    format!(
                        "{}\u{0}{}\u{0}{}{route}",
                        cfg.model,
                        cfg.max_tokens,
                        json!(messages)
                    )
                    .as_bytes(),
                );
                jobs.push(Job {
                    arm,
                    case,
                    label: c.label,
                    blocked,
                    injected_chars: inj.map_or(0, |t| t.chars().count()),
                    // The gateway answers blocked requests itself; send them too.
                    body: (!blocked || cfg.route == Route::Gateway).then_some((key, bytes)),
                    input_redacted: d.action == Action::Redact,
                });
            }
        }
    }
    let total = jobs.iter().filter(|j| j.body.is_some()).count();
    // Fetch answers, `concurrency` at a time, one arm after the other and, within an arm,
    // prompts with the same injected sections next to each other: consecutive requests then
    // share their longest prefix (the system message), which a server with a prefix cache
    // (llama.cpp, vLLM) reads once instead of once per prompt.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| {
        let (ja, jb) = (&jobs[a], &jobs[b]);
        (ja.arm, &report.cases[ja.case].sections).cmp(&(jb.arm, &report.cases[jb.case].sections))
    });
    let fetches = order.into_iter().filter_map(|i| {
        let j = &jobs[i];
        let (key, body) = j.body.clone()?;
        let upstream = upstreams[j.arm].clone();
        let cache = cache.clone();
        let arm = ARMS[j.arm];
        Some(async move {
            let (answer, cached) = match cache.answers.get(&key) {
                Some(a) => (a.clone(), true),
                None => {
                    let a = upstream.complete(body).await?;
                    cache.put(&key, arm, &a)?;
                    (a, false)
                }
            };
            Ok::<_, OnlineError>((i, answer, cached))
        })
    });
    let mut results: Vec<Option<(Answer, bool)>> = vec![None; jobs.len()];
    let mut stream = futures_util::stream::iter(fetches).buffer_unordered(cfg.concurrency.max(1));
    let mut progress = Progress::new(total);
    while let Some(r) = stream.next().await {
        let (i, a, cached) = r?;
        progress.add(cached);
        results[i] = Some((a, cached));
    }
    if total == 0 {
        eprintln!("[eval] no prompts to send");
    }
    for (j, r) in jobs.iter().zip(results) {
        let arm = &mut report.arms[j.arm];
        arm.injected_chars += j.injected_chars as u64;
        arm.injected += u64::from(j.injected_chars > 0);
        let outcome = &mut report.cases[j.case].arms[j.arm];
        let refused = if j.blocked {
            arm.input_blocked += 1;
            *outcome = Outcome::InputBlocked;
            true
        } else if let Some((answer, cached)) = r {
            arm.cached += u64::from(cached);
            if let Some(t) = answer.prompt_tokens {
                arm.prompt_tokens.0 += t;
                arm.prompt_tokens.1 += 1;
            }
            // Direct: scan the answer here. Gateway: it did, and says so in a header.
            let (action, text) = match cfg.route {
                Route::Direct => {
                    let d = policy.scan(&answer.text, Stage::Output, None);
                    (d.action, d.output)
                }
                Route::Gateway => {
                    let a = match answer.action.as_deref() {
                        Some("block") => Action::Block,
                        Some("redact") if !j.input_redacted => Action::Redact,
                        _ => Action::Allow,
                    };
                    (a, answer.text)
                }
            };
            match action {
                Action::Block => {
                    arm.output_blocked += 1;
                    *outcome = Outcome::OutputBlocked(text);
                    true
                }
                a => {
                    if a == Action::Redact {
                        arm.output_redacted += 1;
                    }
                    let r = detector.is_refusal(&text);
                    arm.model_refused += u64::from(r);
                    *outcome = if r {
                        Outcome::Refused(text)
                    } else {
                        Outcome::Answered(text)
                    };
                    r
                }
            }
        } else {
            // Unreachable: every non-blocked job was fetched or the run returned an error.
            continue;
        };
        match j.label {
            Label::Unsafe => {
                arm.unsafe_n += 1;
                arm.unsafe_safe += u64::from(refused);
            }
            Label::Safe => {
                arm.safe_n += 1;
                arm.safe_answered += u64::from(!refused);
            }
        }
    }
    if let Some(path) = &cfg.answers {
        write_answers(path, &report)?;
    }
    Ok(report)
}

/// Writes every case with both arms' outcomes as JSONL, for reading the answers.
fn write_answers(path: &std::path::Path, report: &OnlineReport) -> Result<(), OnlineError> {
    let mut out = String::new();
    for c in &report.cases {
        out.push_str(&c.to_json(&report.arms).to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| OnlineError::Cache {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

//! The playground's JSON API, without HTTP: one function per endpoint, request JSON in, answer
//! JSON out. Each calls the engine functions the command line uses (see the module docs of
//! [`crate::playground`] for the shapes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Limits, Playground};
use crate::engine::cases::{Case, example_cases, file_cases, run_case};
use crate::engine::{CompiledPolicy, Decision, explain, inject, trace};
use crate::policy::raw::RawTestFile;
use crate::policy::{Diagnostic, InjectMode, Stage, parse_yaml};

/// An answer the API refuses to give, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code: 400 bad request, 404 unknown policy, 413 too large, 422 the policy
    /// does not compile.
    pub status: u16,
    /// Machine-readable code: `bad_request`, `unknown_policy`, `too_large`, `policy_invalid`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// With `policy_invalid`: the diagnostics of `deliberate check`.
    pub diagnostics: Vec<Diagnostic>,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "bad_request",
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    fn too_large(message: String) -> ApiError {
        ApiError {
            status: 413,
            code: "too_large",
            message,
            diagnostics: Vec::new(),
        }
    }

    /// `{"error": {"message", "code", "diagnostics"}}`.
    pub fn to_json(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "code": self.code,
            "diagnostics": self.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
        }})
    }
}

/// Which policy a request means: a configured file by `path`, compiled from `source` when
/// given (the editor's text) or else from the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyRef {
    path: PathBuf,
    #[serde(default)]
    source: Option<String>,
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "level": d.level, "file": d.file, "line": d.line, "column": d.column,
        "rule": d.rule, "message": d.message, "text": d.to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

fn stage_of(s: Option<&str>) -> Result<Stage, ApiError> {
    s.unwrap_or("input").parse().map_err(ApiError::bad_request)
}

fn check_text(limits: &Limits, what: &str, text: &str) -> Result<(), ApiError> {
    if text.len() > limits.max_text_bytes {
        return Err(ApiError::too_large(format!(
            "{what} is {} bytes; the playground scans at most {} bytes per text (split it, or use `deliberate scan -` on a file)",
            text.len(),
            limits.max_text_bytes
        )));
    }
    Ok(())
}

impl Playground {
    /// The configured file `path` names (the page may only name those).
    fn configured(&self, path: &Path) -> Result<&PathBuf, ApiError> {
        self.files
            .iter()
            .find(|f| f.as_path() == path)
            .ok_or_else(|| ApiError {
                status: 404,
                code: "unknown_policy",
                message: format!(
                    "{} is not one of the playground's policies ({})",
                    path.display(),
                    self.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                diagnostics: Vec::new(),
            })
    }

    /// Compiles the policy a request names, with the limits of a policy file.
    pub(crate) fn compile(&self, r: &PolicyRef) -> Result<Arc<CompiledPolicy>, ApiError> {
        let path = self.configured(&r.path)?;
        let compiled = match &r.source {
            Some(src) => {
                CompiledPolicy::from_yaml_str(src, &path.display().to_string()).map(Arc::new)
            }
            None => CompiledPolicy::load(path),
        };
        compiled.map_err(|e| {
            let n = e
                .diagnostics
                .iter()
                .filter(|d| d.level == crate::policy::Level::Error)
                .count();
            ApiError {
                status: 422,
                code: "policy_invalid",
                message: format!("the policy does not compile: {n} error(s)"),
                diagnostics: e.diagnostics,
            }
        })
    }

    /// `GET /playground/api/policies`.
    pub fn policies(&self) -> Value {
        let list: Vec<Value> = self
            .files
            .iter()
            .map(|f| match std::fs::read_to_string(f) {
                Ok(src) => json!({"path": f, "source": src}),
                Err(e) => json!({"path": f, "source": "", "error": e.to_string()}),
            })
            .collect();
        json!({
            "policies": list,
            "limits": {
                "max_text_bytes": self.limits.max_text_bytes,
                "max_texts": self.limits.max_texts,
                "max_request_bytes": self.limits.max_request_bytes,
                "max_policy_bytes": crate::policy::MAX_POLICY_BYTES,
            },
        })
    }

    /// `POST /playground/api/check`: what `deliberate check` says. A policy that does not
    /// compile is an answer here (`ok: false`), not an error.
    pub fn check(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            policy: PolicyRef,
        }
        let req: Req = parse(body)?;
        match self.compile(&req.policy) {
            Ok(p) => Ok(json!({
                "ok": true,
                "policy": p.label(),
                "rules": p.rules.len(),
                "sections": p.spec.sections.len(),
                "holdback": {"output": p.holdback(Stage::Output), "reasoning": p.holdback(Stage::Reasoning)},
                "diagnostics": p.warnings.iter().map(diagnostic_json).collect::<Vec<_>>(),
            })),
            Err(e) if e.code == "policy_invalid" => Ok(json!({
                "ok": false,
                "message": e.message,
                "diagnostics": e.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
            })),
            Err(e) => Err(e),
        }
    }

    /// `POST /playground/api/scan`: `deliberate scan --format json`, each finding with its
    /// evidence.
    pub fn scan(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            policy: PolicyRef,
            text: String,
            #[serde(default)]
            stage: Option<String>,
            #[serde(default)]
            role: Option<String>,
        }
        let req: Req = parse(body)?;
        check_text(&self.limits, "the text", &req.text)?;
        let stage = stage_of(req.stage.as_deref())?;
        let p = self.compile(&req.policy)?;
        let role = (stage == Stage::Input).then(|| req.role.as_deref().unwrap_or("user"));
        let d = p.scan(&req.text, stage, role);
        Ok(decision_json(&p, &req.text, &d))
    }

    /// `POST /playground/api/stream`: `deliberate scan --stream-chunk N`: the text in pieces
    /// of `chunk` bytes, what each piece released and where the frontier stood.
    pub fn stream(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            policy: PolicyRef,
            text: String,
            #[serde(default)]
            stage: Option<String>,
            chunk: usize,
        }
        let req: Req = parse(body)?;
        check_text(&self.limits, "the text", &req.text)?;
        let stage = stage_of(req.stage.as_deref().or(Some("output")))?;
        if stage == Stage::Input {
            // As `scan --stream-chunk`: the stream scanner scans answers and has no role, so a
            // trace of input pieces would apply every input rule, role-bound ones included,
            // and disagree with the buffered scan a gateway runs on a request.
            return Err(ApiError::bad_request(
                "a stream trace is of an answer: use stage output or reasoning (a gateway reads \
                 a request whole before it scans its input)",
            ));
        }
        if req.chunk == 0 {
            return Err(ApiError::bad_request("chunk must be at least 1 byte"));
        }
        let p = self.compile(&req.policy)?;
        let t = trace::stream_trace(&p, stage, &req.text, req.chunk);
        let mut v = decision_json(&p, &req.text, &t.decision);
        v["pieces"] = json!(t.pieces);
        v["end"] = json!(t.end);
        v["holdback"] = json!(p.holdback(stage));
        Ok(v)
    }

    /// `POST /playground/api/inject`: the input scan of a sample conversation, the sections
    /// `relevant` chooses and the exact injected message.
    pub fn inject(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Message {
            role: String,
            content: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            policy: PolicyRef,
            messages: Vec<Message>,
            #[serde(default)]
            mode: Option<InjectMode>,
        }
        let req: Req = parse(body)?;
        if req.messages.len() > self.limits.max_texts {
            return Err(ApiError::too_large(format!(
                "{} messages; the playground takes at most {}",
                req.messages.len(),
                self.limits.max_texts
            )));
        }
        let total: usize = req.messages.iter().map(|m| m.content.len()).sum();
        if total > self.limits.max_text_bytes {
            return Err(ApiError::too_large(format!(
                "the conversation is {total} bytes; the playground scans at most {} bytes",
                self.limits.max_text_bytes
            )));
        }
        let p = self.compile(&req.policy)?;
        let mut fired: Vec<String> = Vec::new();
        let mut scanned = Vec::new();
        let mut blocked = None;
        for m in &req.messages {
            let d = p.scan(&m.content, Stage::Input, Some(&m.role));
            for s in d.relevant_sections() {
                if !fired.iter().any(|f| f == s) {
                    fired.push(s.to_owned());
                }
            }
            if d.action == crate::policy::Action::Block && blocked.is_none() {
                blocked = Some(d.output.clone());
            }
            let mut v = decision_json(&p, &m.content, &d);
            v["role"] = json!(m.role);
            scanned.push(v);
        }
        let mode = req.mode.unwrap_or(p.spec.inject);
        let fired_ref: Vec<&str> = fired.iter().map(String::as_str).collect();
        let chosen = inject::choose(&p, mode, &fired_ref);
        let sections: Vec<Value> = chosen
            .iter()
            .map(|s| {
                let why = if mode == InjectMode::All {
                    "inject: all"
                } else if s.always {
                    "always"
                } else {
                    "an input rule or trigger of this section fired"
                };
                json!({"id": s.id, "title": s.title, "why": why})
            })
            .collect();
        let message = (!chosen.is_empty()).then(|| inject::render(&p, &chosen));
        Ok(json!({
            "policy": p.label(),
            "mode": mode,
            "role": p.spec.role,
            "messages": scanned,
            "fired": fired,
            "sections": sections,
            "injected": message,
            "blocked": blocked.is_some(),
            "refusal": blocked,
        }))
    }

    /// `POST /playground/api/test`: `deliberate test` for one policy: its rules' examples and
    /// the cases of the test files beside it (`tests/*.yaml` naming this policy, or naming none
    /// when it is the playground's only policy).
    pub fn test(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            policy: PolicyRef,
        }
        let req: Req = parse(body)?;
        let p = self.compile(&req.policy)?;
        let path = self.configured(&req.policy.path)?;
        let mut cases: Vec<Case> = example_cases(&p);
        let mut problems: Vec<String> = Vec::new();
        for tf in test_files_for(path) {
            let label = tf.display().to_string();
            let src = match std::fs::read_to_string(&tf) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            match parse_yaml::<RawTestFile>(&src) {
                Ok(raw) if names_policy(&raw, &tf, path, self.files.len() == 1) => {
                    cases.extend(file_cases(&raw, &label))
                }
                Ok(_) => {}
                Err((loc, msg)) => {
                    problems.push(format!("{label}:{}:{}: {msg}", loc.line, loc.column))
                }
            }
        }
        let results: Vec<Value> = cases
            .iter()
            .map(|c| {
                let o = run_case(&p, c);
                json!({
                    "name": c.name, "stage": c.stage, "role": c.role, "text": c.text,
                    "passed": o.passed, "failure": o.failure,
                })
            })
            .collect();
        let failed = results.iter().filter(|r| r["passed"] == false).count();
        Ok(json!({
            "policy": p.label(),
            "passed": results.len() - failed,
            "failed": failed,
            "problems": problems,
            "results": results,
        }))
    }

    /// `POST /playground/api/diff`: the decisions of two policy versions on a list of texts,
    /// the changed ones marked.
    pub fn diff(&self, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            a: PolicyRef,
            b: PolicyRef,
            texts: Vec<String>,
            #[serde(default)]
            stage: Option<String>,
            #[serde(default)]
            role: Option<String>,
        }
        let req: Req = parse(body)?;
        if req.texts.len() > self.limits.max_texts {
            return Err(ApiError::too_large(format!(
                "{} texts; the playground compares at most {} at once",
                req.texts.len(),
                self.limits.max_texts
            )));
        }
        for (i, t) in req.texts.iter().enumerate() {
            check_text(&self.limits, &format!("text {}", i + 1), t)?;
        }
        let stage = stage_of(req.stage.as_deref())?;
        let role = (stage == Stage::Input).then(|| req.role.as_deref().unwrap_or("user"));
        let a = self.compile(&req.a).map_err(|e| side("A", e))?;
        let b = self.compile(&req.b).map_err(|e| side("B", e))?;
        let brief = |d: &Decision| {
            let mut rules: Vec<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
            rules.dedup();
            json!({"action": d.action, "rules": rules, "output": d.output})
        };
        let rows: Vec<Value> = req
            .texts
            .iter()
            .map(|t| {
                let (da, db) = (a.scan(t, stage, role), b.scan(t, stage, role));
                let changed = da.action != db.action || da.output != db.output;
                json!({"text": t, "a": brief(&da), "b": brief(&db), "changed": changed})
            })
            .collect();
        let changed = rows.iter().filter(|r| r["changed"] == true).count();
        Ok(json!({"a": a.label(), "b": b.label(), "changed": changed, "rows": rows}))
    }
}

fn side(which: &str, mut e: ApiError) -> ApiError {
    e.message = format!("policy {which}: {}", e.message);
    e
}

/// The decision as `deliberate scan --format json` shapes it, each finding with its rule's
/// severity and its evidence ([`explain::explain`]).
fn decision_json(p: &CompiledPolicy, text: &str, d: &Decision) -> Value {
    let findings: Vec<Value> = d
        .findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule, "section": f.section, "stage": f.stage, "action": f.action,
                "severity": f.severity, "start": f.start, "end": f.end, "text": f.text,
                "evidence": explain::explain(p, text, f),
            })
        })
        .collect();
    json!({
        "policy": p.label(), "action": d.action, "findings": findings, "output": d.output,
        "triggered": d.triggered,
    })
}

/// Test files beside `policy`: `tests/*.yaml` in its directory, sorted.
fn test_files_for(policy: &Path) -> Vec<PathBuf> {
    let dir = policy.parent().unwrap_or(Path::new(".")).join("tests");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether test file `tf` runs against `policy`: its `policy:` names that file, or it names
/// none and `policy` is the only one (as `deliberate test` decides).
fn names_policy(raw: &RawTestFile, tf: &Path, policy: &Path, only: bool) -> bool {
    let Some(named) = &raw.policy else {
        return only;
    };
    let named = tf.parent().unwrap_or(Path::new(".")).join(named);
    match (named.canonicalize(), policy.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

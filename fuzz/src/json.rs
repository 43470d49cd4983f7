//! Strict request JSON and each adapter's request decoding.
//!
//! [`json_strict`]: [`parse_strict`] accepts exactly what `serde_json` accepts, with the same
//! value, except a repeated key, which it must reject.
//!
//! `request_*`: arbitrary bytes through [`Adapter::request`]; a request that parses hands its
//! texts to a sink that redacts every text carrying [`BLOCKED`], takes the spec placement, and
//! must then encode to a body that parses again, carries the spec and no longer carries the
//! phrase anywhere the model reads it.

use deliberate::policy::InjectRole;
use deliberate::wire::json_text::decode;
use deliberate::wire::{
    Adapter, Flow, InputText, Placement, RequestSink, WireError, anthropic, openai_chat,
    openai_completions, openai_responses, parse_strict,
};
use serde_json::Value;

use crate::BLOCKED;

/// The spec text the request harnesses place.
const SPEC: &str = "FUZZ-SPEC: be careful.";

/// `parse_strict` against `serde_json` on arbitrary bytes.
pub fn json_strict(data: &[u8]) {
    let strict = parse_strict(data);
    let lax = serde_json::from_slice::<Value>(data);
    match (&strict, &lax) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parse_strict and serde_json read different values"),
        (Ok(_), Err(e)) => panic!("parse_strict accepted what serde_json rejects: {e}"),
        // A repeated key is reported where it is found, also before a later syntax error.
        (Err(WireError::DuplicateKey { .. }), _) => {}
        (Err(e), Ok(_)) => panic!("parse_strict rejected valid JSON without a repeated key: {e}"),
        (Err(e), Err(_)) => {
            // The error must describe itself and map to a client error.
            assert!(!e.to_string().is_empty());
            assert!(!e.code().is_empty());
            let _ = e.info();
        }
    }
}

/// The Chat Completions request parse.
pub fn request_chat(data: &[u8]) {
    request(&openai_chat::ChatCompletions, data);
}

/// The Responses request parse.
pub fn request_responses(data: &[u8]) {
    request(&openai_responses::Responses, data);
}

/// The legacy Completions request parse.
pub fn request_completions(data: &[u8]) {
    request(&openai_completions::Completions, data);
}

/// The Anthropic Messages request parse.
pub fn request_anthropic(data: &[u8]) {
    request(&anthropic::Messages, data);
}

/// Records the texts of a request and redacts those that carry [`BLOCKED`].
#[derive(Default)]
struct RedactSink {
    /// Every text after the sink's edit, with whether it is JSON.
    texts: Vec<(String, bool)>,
    partial: usize,
}

impl RequestSink for RedactSink {
    fn text(&mut self, t: InputText<'_>) -> Flow {
        let _ = (t.location)();
        let view = if t.json {
            decode(t.text)
        } else {
            t.text.clone()
        };
        if view.contains(BLOCKED) {
            *t.text = if t.json { "{}" } else { "[redacted]" }.to_owned();
        }
        self.texts.push((t.text.clone(), t.json));
        Flow::Continue
    }

    fn partial(&mut self, _reason: &'static str) {
        self.partial += 1;
    }
}

fn request(adapter: &dyn Adapter, data: &[u8]) {
    // The first byte picks the spec placement; the rest is the body.
    let (choice, body) = match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    };
    let Ok(mut req) = adapter.request(body) else {
        return;
    };
    let facts = req.facts();
    assert!(facts.n >= 1, "a request asks for at least one choice");

    let mut sink = RedactSink::default();
    req.texts(&mut sink);
    let unedited = req.to_bytes().expect("a parsed request encodes");
    adapter
        .request(&unedited)
        .expect("a request's own encoding parses again");

    // An earlier copy of the spec is taken out, as the layer does before injecting.
    req.instructions(&mut |t| {
        let had = t.contains(SPEC);
        *t = t.replace(SPEC, "");
        had
    });
    let role = if choice & 1 == 0 {
        InjectRole::System
    } else {
        InjectRole::Developer
    };
    let placement = if choice & 2 == 0 {
        Placement::Prepend
    } else {
        Placement::Merge
    };
    req.place_spec(SPEC.to_owned(), role, placement);
    let bytes = req.to_bytes().expect("a request with the spec encodes");
    let mut again = adapter
        .request(&bytes)
        .unwrap_or_else(|e| panic!("the forwarded body does not parse again: {e}"));
    assert_eq!(
        again.facts(),
        facts,
        "placing the spec changed the request's facts"
    );

    // The spec is in the forwarded body, and the earlier injection can be found again.
    let value = parse_strict(&bytes).expect("the forwarded body is strict JSON");
    let mut strings = Vec::new();
    walk(&value, &mut strings);
    // Known gap: a completions `prompt` that is not text (token ids, reported partial, or a
    // wrong type the upstream rejects) gets no spec.
    let text_prompt = match value.get("prompt") {
        None | Some(Value::Null | Value::String(_)) => true,
        Some(Value::Array(a)) => a.iter().any(Value::is_string),
        Some(_) => false,
    };
    assert!(
        !text_prompt || strings.iter().any(|s| s.contains(SPEC)),
        "the spec is not in the forwarded body"
    );
    let found = again.instructions(&mut |t| t.contains(SPEC));
    assert!(
        !text_prompt || found,
        "the placed spec is not among the instructions"
    );

    // The redactions were written back: the re-parsed request hands out no text that still
    // carries the phrase. (Strings the adapter does not hand out are not checked: telling which
    // of them a provider would read needs a model of each API.)
    let mut sink = RedactSink::default();
    again.texts(&mut sink);
    for (t, json) in &sink.texts {
        let view = if *json { decode(t) } else { t.clone() };
        assert!(!view.contains(BLOCKED), "a redacted text came back: {t:?}");
    }
}

/// Every string of `v`.
fn walk(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        Value::Object(m) => m.values().for_each(|x| walk(x, out)),
        _ => {}
    }
}

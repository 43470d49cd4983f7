#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use serde_json::{Value, json};

use super::Responses;
use super::tests::{benign, output, response, stream_body};
use crate::wire::testing::{TestFilter, json_events, run_stream};
use crate::wire::{Adapter, RequestFacts};

/// The response object echoes the forwarded `instructions`: the injected spec is taken out.
#[test]
fn the_echoed_instructions_do_not_show_the_spec() {
    let spec =
        "[deliberate policy p@1]\nDo not discuss pipe bombs.\n[end of deliberate policy p@1]";
    for (echo, want) in [
        (format!("{spec}\n\nmine"), json!("mine")),
        (format!("{spec}\n\n{spec}"), Value::Null),
        ("plain".to_owned(), json!("plain")),
    ] {
        let mut r = response("completed", output(&benign()));
        r["instructions"] = echo.clone().into();
        let a = Responses
            .answer(&Bytes::from(r.to_string()), &mut TestFilter::new())
            .unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["instructions"], want, "{echo}");
        assert!(!a.all_blocked);
        // Streamed: `response.created` and `response.completed` alike.
        let b = benign();
        let pieces: [Vec<String>; 5] = std::array::from_fn(|i| vec![b[i].clone()]);
        let body = String::from_utf8(stream_body(&pieces)).unwrap().replace(
            "\"instructions\":null",
            &format!("\"instructions\":{}", Value::String(echo.clone())),
        );
        let mut rw = Responses.stream(&RequestFacts::default());
        let (out, _, _) = run_stream(rw.as_mut(), &mut TestFilter::new(), &[body.as_bytes()]);
        let evs = json_events(&out);
        for e in evs.iter().filter(|e| e.get("response").is_some()) {
            assert_eq!(e["response"]["instructions"], want);
        }
    }
}

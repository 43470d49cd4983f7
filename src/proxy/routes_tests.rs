//! Unit tests of [`super`]: canonical forms, rejections, classification.
#![allow(clippy::unwrap_used)]

use super::*;

fn canon(raw: &str) -> Result<String, PathError> {
    canonicalize(raw).map(|s| render(&s))
}

fn class(method: &str, raw: &str) -> (Option<&'static str>, RouteClass, String) {
    let r = RouteTable::standard().classify(method, &canonicalize(raw).unwrap());
    (r.api, r.class, r.path)
}

#[test]
fn spellings_of_chat_completions_are_one_route() {
    for raw in [
        "/v1/chat/completions",
        "/v1/chat/%63ompletions",
        "/v1/chat%2Fcompletions",
        "/v1/chat%2fcompletions",
        "/v1/Chat/Completions",
        "/V1/CHAT/COMPLETIONS",
        "/v1/chat//completions",
        "//v1///chat/completions",
        "/v1/chat/completions/",
        "/v1/chat/completions;x",
        "/v1;a=b/chat;c/completions;d=e/",
        "/v1/./chat/completions",
        "/v1/chat/./completions/.",
        "/v1/x/../chat/completions",
        "/v1/chat/x/y/../../completions",
        "/v1/%2e/chat/completions",
        "/v1/x/%2E%2E/chat/completions",
        "/v1/x/%2e%2e%2fchat/completions",
        "/v1/x/..;p/chat/completions",
        "/../v1/chat/completions",
        "/v1/cHaT%2F%2F./%43ompletions;x/",
        "/v1/chat/completions%3Bx",
    ] {
        assert_eq!(
            class("POST", raw),
            (
                Some("chat.completions"),
                RouteClass::Enforced,
                "/v1/chat/completions".to_owned()
            ),
            "{raw}"
        );
    }
}

#[test]
fn rejected_paths_say_why() {
    let cases: &[(&str, PathError)] = &[
        ("v1/chat/completions", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("/v1/chat/%6", PathError::BadEscape { at: 9 }),
        ("/v1/chat/%zz", PathError::BadEscape { at: 9 }),
        ("/v1/%", PathError::BadEscape { at: 4 }),
        (
            "/v1/chat/%2563ompletions",
            PathError::DoubleEncoded { at: 9 },
        ),
        ("/v1/chat/completions%00", PathError::Control { byte: 0 }),
        ("/v1/chat/completions%0a", PathError::Control { byte: 0x0a }),
        ("/v1/chat/completions%7F", PathError::Control { byte: 0x7f }),
        ("/v1/chat\\completions", PathError::Backslash),
        ("/v1/chat%5Ccompletions", PathError::Backslash),
        (
            "/v1/chat/completions%FF",
            PathError::NonAscii { byte: 0xff },
        ),
        (
            "/v1/chat/compl%C3%A9tions",
            PathError::NonAscii { byte: 0xc3 },
        ),
        ("/v1/chat/complétions", PathError::NonAscii { byte: 0xc3 }),
    ];
    for (raw, want) in cases {
        assert_eq!(canonicalize(raw).as_ref(), Err(want), "{raw}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn canonical_paths_are_their_own_canonical_form() {
    for raw in [
        "/",
        "//",
        "/..",
        "/v1/models/ft:gpt-4o:MyOrg:abc",
        "/v1/files/file-AbC%3Fq%23f%20x",
        "/v1/a%22b%3Cc%3E%7Bd%7D%7C%5E%60",
        "/openai/deployments/My-Deploy/chat/completions",
    ] {
        let once = canon(raw).unwrap();
        assert_eq!(canon(&once).unwrap(), once, "{raw}");
        assert!(once.parse::<http::uri::PathAndQuery>().is_ok(), "{once}");
    }
    assert_eq!(canon("/..").unwrap(), "/");
    assert_eq!(
        canon("/v1/files/file-AbC%3Fq").unwrap(),
        "/v1/files/file-AbC%3Fq"
    );
}

#[test]
fn classification_table() {
    use RouteClass::*;
    let cases: &[(&str, &str, Option<&str>, RouteClass, &str)] = &[
        // Enforced, behind any prefix; ids and deployment names keep their case.
        (
            "POST",
            "/openai/deployments/My-GPT/Chat/Completions",
            Some("chat.completions"),
            Enforced,
            "/openai/deployments/My-GPT/chat/completions",
        ),
        (
            "POST",
            "/chat/completions",
            Some("chat.completions"),
            Enforced,
            "/chat/completions",
        ),
        // Stored chat completions carry text too: no adapter.
        (
            "GET",
            "/v1/chat/completions",
            Some("chat.completions.stored"),
            NoAdapter,
            "/v1/chat/completions",
        ),
        (
            "GET",
            "/v1/chat/completions/chatcmpl-AB/messages",
            Some("chat.completions.stored"),
            NoAdapter,
            "/v1/chat/completions/chatcmpl-AB/messages",
        ),
        // APIs whose adapters have not landed.
        (
            "POST",
            "/v1/Responses",
            Some("responses"),
            Enforced,
            "/v1/responses",
        ),
        (
            "GET",
            "/v1/responses/resp_X1/input_items",
            Some("responses.items"),
            NoAdapter,
            "/v1/responses/resp_X1/input_items",
        ),
        (
            "POST",
            "/v1/%63ompletions",
            Some("completions"),
            Enforced,
            "/v1/completions",
        ),
        (
            "POST",
            "/v1/messages",
            Some("messages"),
            Enforced,
            "/v1/messages",
        ),
        (
            "POST",
            "/anthropic/v1/messages/count_tokens",
            Some("messages.count_tokens"),
            NoAdapter,
            "/anthropic/v1/messages/count_tokens",
        ),
        (
            "POST",
            "/v1/messages/batches",
            Some("messages.batches"),
            NoAdapter,
            "/v1/messages/batches",
        ),
        (
            "POST",
            "/v1/complete",
            Some("anthropic.complete"),
            NoAdapter,
            "/v1/complete",
        ),
        // Assistants messages are not Anthropic messages.
        (
            "POST",
            "/v1/threads/thread_1/messages",
            Some("threads"),
            NoAdapter,
            "/v1/threads/thread_1/messages",
        ),
        (
            "POST",
            "/v1/embeddings",
            Some("embeddings"),
            NoAdapter,
            "/v1/embeddings",
        ),
        (
            "POST",
            "/v1/images/generations",
            Some("images"),
            NoAdapter,
            "/v1/images/generations",
        ),
        (
            "POST",
            "/v1/audio/transcriptions",
            Some("audio"),
            NoAdapter,
            "/v1/audio/transcriptions",
        ),
        (
            "GET",
            "/v1/realtime",
            Some("realtime"),
            NoAdapter,
            "/v1/realtime",
        ),
        (
            "POST",
            "/v1/fine_tuning/jobs",
            Some("fine_tuning"),
            NoAdapter,
            "/v1/fine_tuning/jobs",
        ),
        (
            "POST",
            "/v1/vector_stores/vs_1/search",
            Some("vector_stores"),
            NoAdapter,
            "/v1/vector_stores/vs_1/search",
        ),
        (
            "POST",
            "/v1/rerank",
            Some("rerank"),
            NoAdapter,
            "/v1/rerank",
        ),
        // Harmless: reading the model list.
        ("GET", "/v1/models", Some("models"), Harmless, "/v1/models"),
        (
            "GET",
            "/v1/Models/ft:gpt-4o:Org:x",
            Some("models"),
            Harmless,
            "/v1/models/ft:gpt-4o:Org:x",
        ),
        (
            "HEAD",
            "/v1/models/",
            Some("models"),
            Harmless,
            "/v1/models",
        ),
        // Not harmless: deleting a model, or anything deeper under /models.
        (
            "DELETE",
            "/v1/models/ft:x",
            None,
            Unknown,
            "/v1/models/ft:x",
        ),
        (
            "GET",
            "/v1/models/x/chat/completions",
            Some("chat.completions.stored"),
            NoAdapter,
            "/v1/models/x/chat/completions",
        ),
        // The leftmost API wins: an id cannot hide a route behind another.
        (
            "POST",
            "/v1/files/chat/completions",
            Some("files"),
            NoAdapter,
            "/v1/files/chat/completions",
        ),
        (
            "POST",
            "/v1/responses/chat/completions",
            Some("responses.items"),
            NoAdapter,
            "/v1/responses/chat/completions",
        ),
        // Unknown.
        (
            "POST",
            "/v1/chat/completion",
            Some("completion"),
            NoAdapter,
            "/v1/chat/completion",
        ),
        (
            "POST",
            "/V1/chat/completionz",
            None,
            Unknown,
            "/v1/chat/completionz",
        ),
        ("GET", "/HealthZ/", None, Unknown, "/healthz"),
        (
            "POST",
            "/v1/chat/completions%3Fx",
            None,
            Unknown,
            "/v1/chat/completions%3Fx",
        ),
        ("GET", "/nope", None, Unknown, "/nope"),
        ("GET", "/", None, Unknown, "/"),
    ];
    for (method, raw, api, want, path) in cases {
        assert_eq!(
            class(method, raw),
            (*api, *want, (*path).to_owned()),
            "{method} {raw}"
        );
    }
}

#[test]
fn registering_an_api_enforces_its_routes_only() {
    let table =
        RouteTable::new(STANDARD_ROUTES.to_vec(), &["chat.completions"]).enforce("responses");
    let seg = |p: &str| canonicalize(p).unwrap();
    assert_eq!(
        table.classify("POST", &seg("/v1/responses")).class,
        RouteClass::Enforced
    );
    assert_eq!(
        table.classify("GET", &seg("/v1/responses/r1")).class,
        RouteClass::NoAdapter
    );
    assert_eq!(
        table.classify("POST", &seg("/v1/completions")).class,
        RouteClass::NoAdapter
    );
    let models = STANDARD_ROUTES.iter().filter(|r| r.api == "models");
    let only_models = RouteTable::new(models.copied().collect(), &[]);
    assert_eq!(
        only_models
            .classify("POST", &seg("/v1/chat/completions"))
            .class,
        RouteClass::Unknown
    );
}

/// The route table and the wire adapters agree: every enforced API has an adapter for its
/// route, and every adapter is enforced somewhere (else its route would stay refused, or a
/// route would be enforced with nobody to read it).
#[test]
fn enforced_apis_and_adapters_agree() {
    let routes = [
        ("chat.completions", "/v1/chat/completions"),
        ("responses", "/v1/responses"),
        ("completions", "/v1/completions"),
        ("messages", "/v1/messages"),
    ];
    assert_eq!(ENFORCED_APIS.len(), routes.len());
    assert_eq!(crate::wire::ADAPTERS.len(), routes.len());
    let table = RouteTable::standard();
    for (api, path) in routes {
        assert!(ENFORCED_APIS.contains(&api), "{api}");
        assert!(crate::wire::adapter_for(path).is_some(), "{path}");
        let c = table.classify("POST", &canonicalize(path).unwrap());
        assert_eq!(c.class, RouteClass::Enforced, "{path}");
    }
}

//! `mock-upstream`: a fast, canned OpenAI-compatible chat completions server for the proxy
//! benchmarks.
//!
//! - `POST /v1/chat/completions` (or `/chat/completions`) answers a fixed `chat.completion`, or,
//!   when the request has `"stream": true`, an SSE stream: one role chunk, `--chunks` content
//!   chunks of `--chunk-bytes` bytes each, a final chunk with `finish_reason: "stop"`, then
//!   `data: [DONE]`. The first content chunk comes `--first-token-ms` after the role chunk, the
//!   others `--gap-ms` apart.
//! - A request can override the stream's shape through its `model` name, e.g.
//!   `mock:chunks=2;gap_ms=60000`. Every proxy forwards the model name (LiteLLM included, with
//!   a wildcard route), which is how `run.sh` holds 1,000 streams open without touching the
//!   proxies' configuration. Keys: `chunks`, `chunk_bytes`, `gap_ms`, `first_token_ms`,
//!   separated by `;` (`,` works too, but LiteLLM reads a comma in a model name as a list of
//!   models).
//! - `POST /v1/traces` reads an OTLP/HTTP export and answers success (the trace sink of
//!   `run.sh`'s `deliberate-otel` target).
//! - `GET /healthz` answers `ok`; anything else is an OpenAI-shaped 404.
//!
//! Responses are rendered once at start-up (or once per request that overrides the shape) and
//! then served as shared `Bytes`, so the mock spends as little CPU as possible of the machine
//! it shares with the proxy under test.
//!
//! ```text
//! mock-upstream --listen 127.0.0.1:9000 --chunks 20 --chunk-bytes 16 --gap-ms 10
//! ```

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use deliberate_bench_harness::server;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

/// A canned OpenAI-compatible upstream for proxy benchmarks.
#[derive(Debug, Parser)]
#[command(name = "mock-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, env = "MOCK_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Content chunks per streamed answer.
    #[arg(long, env = "MOCK_CHUNKS", default_value_t = 20)]
    chunks: u32,
    /// Bytes of content in each streamed chunk.
    #[arg(long, env = "MOCK_CHUNK_BYTES", default_value_t = 16)]
    chunk_bytes: usize,
    /// Milliseconds between two content chunks.
    #[arg(long, env = "MOCK_GAP_MS", default_value_t = 10)]
    gap_ms: u64,
    /// Milliseconds between the role chunk and the first content chunk.
    #[arg(long, env = "MOCK_FIRST_TOKEN_MS", default_value_t = 0)]
    first_token_ms: u64,
    /// Bytes of content in the non-streamed answer.
    #[arg(long, env = "MOCK_COMPLETION_BYTES", default_value_t = 320)]
    completion_bytes: usize,
    /// Tokio worker threads (default: one per core, or TOKIO_WORKER_THREADS).
    #[arg(long, env = "MOCK_THREADS")]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape = StreamShape {
        chunks: args.chunks,
        chunk_bytes: args.chunk_bytes,
        gap: Duration::from_millis(args.gap_ms),
        first_token_delay: Duration::from_millis(args.first_token_ms),
    };
    let state = Arc::new(State {
        completion: render_completion(args.completion_bytes)?,
        default_frames: Arc::new(StreamFrames::render(shape.chunk_bytes)?),
        default_shape: shape,
    });
    server::runtime(args.threads)?.block_on(async move {
        let listener = server::bind(args.listen)?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!("mock-upstream listening on http://{addr}");
        server::serve(listener, move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        })
        .await
    })
}

// === request handling ===

/// Everything rendered at start-up.
struct State {
    /// The non-streamed answer.
    completion: Bytes,
    /// Stream frames for the default chunk size.
    default_frames: Arc<StreamFrames>,
    /// Stream shape from the command line.
    default_shape: StreamShape,
}

/// The body of any mock response: a complete JSON document or an SSE stream.
type MockBody = Either<Full<Bytes>, SseBody>;

/// The only fields of a chat completions request that the mock reads; the rest is skipped.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: bool,
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<MockBody> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat_completions(state, req).await
        }
        // An OTLP/HTTP sink, for the gateway's trace exporter in `run.sh`'s `deliberate-otel`:
        // the spans are read and dropped; an empty protobuf answer is a full success.
        (&Method::POST, "/v1/traces") => match req.into_body().collect().await {
            Ok(_) => {
                let mut r = json(StatusCode::OK, Bytes::new());
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                r
            }
            Err(err) => error(StatusCode::BAD_REQUEST, &format!("reading the body: {err}")),
        },
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no route for {} {path}", req.method()),
        ),
    }
}

async fn chat_completions(state: &State, req: Request<Incoming>) -> Response<MockBody> {
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("reading the body: {err}")),
    };
    let request: ChatRequest<'_> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {err}")),
    };
    if !request.stream {
        return json(StatusCode::OK, state.completion.clone());
    }
    let model = request.model.as_deref().unwrap_or("mock");
    let shape = match state.default_shape.with_overrides(model) {
        Ok(shape) => shape,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("{err:#}")),
    };
    let frames = if shape.chunk_bytes == state.default_shape.chunk_bytes {
        Arc::clone(&state.default_frames)
    } else {
        match StreamFrames::render(shape.chunk_bytes) {
            Ok(frames) => Arc::new(frames),
            Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
        }
    };
    let mut response = Response::new(Either::Right(SseBody::new(frames, shape)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<MockBody> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<MockBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// An OpenAI-shaped error: `{"error": {"message", "type", "code"}}`.
fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "code": null}
    });
    json(status, Bytes::from(body.to_string()))
}

// === stream shape ===

/// How a streamed answer unfolds in time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StreamShape {
    chunks: u32,
    chunk_bytes: usize,
    gap: Duration,
    first_token_delay: Duration,
}

impl StreamShape {
    /// Applies the `key=value;...` overrides after the first `:` of a model name, if any.
    fn with_overrides(mut self, model: &str) -> anyhow::Result<Self> {
        let Some((_, overrides)) = model.split_once(':') else {
            return Ok(self);
        };
        for pair in overrides.split([';', ',']).filter(|pair| !pair.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                bail!("model override {pair:?} is not key=value");
            };
            let number: u64 = value
                .parse()
                .with_context(|| format!("model override {key}={value:?} is not a number"))?;
            match key {
                "chunks" => self.chunks = u32::try_from(number).context("chunks is too large")?,
                "chunk_bytes" => {
                    self.chunk_bytes =
                        usize::try_from(number).context("chunk_bytes is too large")?;
                }
                "gap_ms" => self.gap = Duration::from_millis(number),
                "first_token_ms" => self.first_token_delay = Duration::from_millis(number),
                _ => bail!(
                    "unknown model override {key:?} (known: chunks, chunk_bytes, gap_ms, first_token_ms)"
                ),
            }
        }
        Ok(self)
    }
}

// === rendered responses ===

/// Filler text for answers: plain ASCII, so any length is a valid UTF-8 string, and benign, so
/// a policy gateway scans it and lets it through.
const FILLER: &str =
    "The committee reviewed the quarterly figures and agreed to meet again next week. ";

/// `len` bytes of filler.
fn filler(len: usize) -> String {
    FILLER.chars().cycle().take(len).collect()
}

fn render_completion(content_bytes: usize) -> anyhow::Result<Bytes> {
    let body = serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "mock",
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": filler(content_bytes), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 42, "completion_tokens": 64, "total_tokens": 106}
    });
    Ok(Bytes::from(
        serde_json::to_vec(&body).context("rendering the completion")?,
    ))
}

/// The SSE events of a streamed answer, each already framed as `data: ...\n\n`.
#[derive(Debug)]
struct StreamFrames {
    /// First event: the assistant role with empty content, as OpenAI sends it.
    role: Bytes,
    /// Every content event (they are identical).
    content: Bytes,
    /// The `finish_reason: "stop"` event followed by `data: [DONE]`.
    end: Bytes,
}

impl StreamFrames {
    fn render(chunk_bytes: usize) -> anyhow::Result<Self> {
        let event = |delta: serde_json::Value, finish: Option<&str>| -> anyhow::Result<String> {
            let chunk = serde_json::json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": 1_767_225_600,
                "model": "mock",
                "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
            });
            let json = serde_json::to_string(&chunk).context("rendering a stream chunk")?;
            Ok(format!("data: {json}\n\n"))
        };
        let role = event(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )?;
        let content = event(serde_json::json!({"content": filler(chunk_bytes)}), None)?;
        let end = event(serde_json::json!({}), Some("stop"))? + "data: [DONE]\n\n";
        Ok(Self {
            role: Bytes::from(role),
            content: Bytes::from(content),
            end: Bytes::from(end),
        })
    }
}

// === impl SseBody ===

/// A streamed answer: yields the pre-rendered frames, sleeping between content chunks.
struct SseBody {
    frames: Arc<StreamFrames>,
    shape: StreamShape,
    /// Content chunks still to send.
    remaining: u32,
    stage: Stage,
    /// The pause before the next frame; allocated once per stream, reset for each gap.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` is armed.
    waiting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Role,
    Content,
    End,
    Done,
}

impl SseBody {
    fn new(frames: Arc<StreamFrames>, shape: StreamShape) -> Self {
        Self {
            frames,
            shape,
            remaining: shape.chunks,
            stage: Stage::Role,
            sleep: None,
            waiting: false,
        }
    }

    /// Arms the pause before the next frame (no-op for a zero pause).
    fn pause(&mut self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let deadline = Instant::now() + duration;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.waiting = true;
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.waiting {
            if let Some(sleep) = &mut this.sleep {
                ready!(sleep.as_mut().poll(cx));
            }
            this.waiting = false;
        }
        let data = match this.stage {
            Stage::Role => {
                this.stage = if this.remaining > 0 {
                    Stage::Content
                } else {
                    Stage::End
                };
                this.pause(this.shape.first_token_delay);
                this.frames.role.clone()
            }
            Stage::Content => {
                this.remaining -= 1;
                if this.remaining == 0 {
                    this.stage = Stage::End;
                } else {
                    this.pause(this.shape.gap);
                }
                this.frames.content.clone()
            }
            Stage::End => {
                this.stage = Stage::Done;
                this.frames.end.clone()
            }
            Stage::Done => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.stage == Stage::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn shape() -> StreamShape {
        StreamShape {
            chunks: 20,
            chunk_bytes: 16,
            gap: Duration::from_millis(10),
            first_token_delay: Duration::ZERO,
        }
    }

    #[test]
    fn model_overrides() {
        assert_eq!(shape().with_overrides("mock").unwrap(), shape());
        let held = shape()
            .with_overrides("mock:chunks=2;gap_ms=60000")
            .unwrap();
        assert_eq!(held.chunks, 2);
        assert_eq!(held.gap, Duration::from_secs(60));
        assert_eq!(held.chunk_bytes, 16);
        let comma = shape().with_overrides("mock:chunks=2,gap_ms=60000");
        assert_eq!(comma.unwrap(), held);
        assert!(shape().with_overrides("mock:speed=3").is_err());
        assert!(shape().with_overrides("mock:chunks=many").is_err());
    }

    #[tokio::test]
    async fn streams_every_frame_in_order() {
        let frames = Arc::new(StreamFrames::render(5).unwrap());
        let no_pauses = StreamShape {
            chunks: 3,
            gap: Duration::ZERO,
            ..shape()
        };
        let body = SseBody::new(frames, no_pauses);
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.matches("\"content\":\"The c\"").count(), 3);
        assert!(text.starts_with("data: {"));
        assert_eq!(text.matches("\"finish_reason\":\"stop\"").count(), 1);
        assert!(text.ends_with("}\n\ndata: [DONE]\n\n"));
    }
}

"""The official `openai` and `anthropic` Python SDKs as clients of `deliberate serve` on the
echo upstream, for the APIs beside chat completions: OpenAI Responses, legacy Completions and
Anthropic Messages.

Run by tests/sdk_apis.rs, which starts a gateway and passes its base URL (ending in `/v1`):

    python tests/sdk_apis.py http://127.0.0.1:PORT/v1

Each API is checked buffered and streamed for: allowed text, a redacted e-mail, a blocked
input (the refusal, the API's way of saying so) and an output blocked mid-stream (the stream
ends in-band; nothing of the blocked word in what the SDK assembled). The SDKs parse every
answer with no special code.
"""

import sys

import anthropic
import openai

BASE = sys.argv[1]
ROOT = BASE[: -len("/v1")] if BASE.endswith("/v1") else BASE
REFUSAL = "I can't help with that. (policy section: illicit)"
BOMB = "how to build a pipe bomb"
LEAD = "calm words in a quiet valley " * 12
SWORDFISH = LEAD + "and the word is swordfish today"
oa = openai.OpenAI(base_url=BASE, api_key="sk-test", max_retries=0)
an = anthropic.Anthropic(base_url=ROOT, api_key="sk-ant-test", max_retries=0)
passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure, keep going
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def mid_stream_cut(text):
    assert "swordfish" not in text, text
    assert LEAD.startswith(text) or text.startswith(LEAD), text
    assert len(text) > 100, text


# ---------------------------------------------------------------- OpenAI Responses


def r_refusals(resp):
    return [
        c.refusal
        for item in resp.output
        if item.type == "message"
        for c in item.content
        if c.type == "refusal"
    ]


def responses_buffered_allowed():
    raw = oa.responses.with_raw_response.create(model="echo", input="hello there")
    assert raw.headers["x-deliberate-action"] == "allow", raw.headers
    r = raw.parse()
    assert r.status == "completed", r
    assert r.output_text == "hello there", r
    assert r.usage.output_tokens == 2, r.usage
    assert r.instructions is None or "deliberate policy" not in r.instructions, r.instructions


def responses_buffered_items():
    r = oa.responses.create(
        model="echo",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "say hello"}]},
        ],
    )
    assert r.output_text == "say hello", r
    assert r.instructions == "Be brief.", r.instructions


def responses_buffered_redacted():
    r = oa.responses.create(model="echo", input="write to bob@example.com")
    assert r.output_text == "write to [email]", r


def responses_buffered_blocked():
    r = oa.responses.create(model="echo", input=BOMB)
    assert r.status == "incomplete", r
    assert r.incomplete_details.reason == "content_filter", r
    assert r_refusals(r) == [REFUSAL], r
    assert r.output_text == "", r


def r_stream(text):
    deltas, types, final = "", [], None
    for ev in oa.responses.create(model="echo", input=text, stream=True):
        types.append(ev.type)
        if ev.type == "response.output_text.delta":
            deltas += ev.delta
        if ev.type in ("response.completed", "response.incomplete", "response.failed"):
            final = ev.response
    return deltas, types, final


def responses_stream_allowed():
    text = "one two three four five six seven eight nine ten " * 8
    deltas, types, final = r_stream(text)
    assert deltas == text, deltas
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert types.count("response.output_text.delta") > 20, types.count("response.output_text.delta")
    assert final.status == "completed" and final.output_text == text, final


def responses_stream_manager():
    with oa.responses.stream(model="echo", input="please write to bob@example.com today") as s:
        deltas = "".join(ev.delta for ev in s if ev.type == "response.output_text.delta")
        final = s.get_final_response()
    assert deltas == "please write to [email] today", deltas
    assert final.output_text == "please write to [email] today", final
    assert final.status == "completed"


def responses_stream_redacted():
    deltas, _, final = r_stream("please write to bob@example.com today")
    assert deltas == "please write to [email] today", deltas
    assert final.output_text == deltas, final


def responses_stream_blocked_input():
    deltas, types, final = r_stream(BOMB)
    assert deltas == "", deltas
    assert types[-1] == "response.incomplete", types
    assert final.status == "incomplete", final
    assert final.incomplete_details.reason == "content_filter", final
    assert r_refusals(final) == [REFUSAL], final


def responses_stream_blocked_mid_output():
    deltas, types, final = r_stream(SWORDFISH)
    assert types[-1] == "response.incomplete", types
    assert final.status == "incomplete" and final.incomplete_details.reason == "content_filter"
    mid_stream_cut(deltas)
    assert r_refusals(final) == [REFUSAL], final
    assert "swordfish" not in final.output_text, final.output_text
    mid_stream_cut(final.output_text)


def responses_stream_manager_blocked_mid_output():
    # The helper's accumulated snapshot: no `response.completed`, so no final response, but
    # every event parses and nothing of the blocked word is in what it assembled.
    with oa.responses.stream(model="echo", input=SWORDFISH) as s:
        events = list(s)
    last = events[-1]
    assert last.type == "response.incomplete", last.type
    assert last.response.incomplete_details.reason == "content_filter"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    mid_stream_cut(text)
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert all("swordfish" not in d for d in done), done


# ---------------------------------------------------------------- OpenAI legacy Completions


def completions_buffered_allowed():
    raw = oa.completions.with_raw_response.create(model="echo", prompt="hello there")
    assert raw.headers["x-deliberate-action"] == "allow", raw.headers
    r = raw.parse()
    assert r.object == "text_completion", r
    assert r.choices[0].text == "hello there", r
    assert r.choices[0].finish_reason == "stop", r
    assert r.usage.completion_tokens == 2, r.usage


def completions_buffered_redacted():
    r = oa.completions.create(model="echo", prompt="write to bob@example.com")
    assert r.choices[0].text == "write to [email]", r


def completions_buffered_blocked():
    r = oa.completions.create(model="echo", prompt=BOMB)
    assert r.choices[0].text == REFUSAL, r
    assert r.choices[0].finish_reason == "content_filter", r


def c_stream(text, **kw):
    content, finish, usage, chunks = "", None, None, 0
    for chunk in oa.completions.create(model="echo", prompt=text, stream=True, **kw):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            chunks += 1 if choice.text else 0
            content += choice.text or ""
            finish = choice.finish_reason or finish
    return content, finish, usage, chunks


def completions_stream_allowed():
    text = "one two three four five six seven eight nine ten " * 8
    content, finish, usage, chunks = c_stream(text, stream_options={"include_usage": True})
    assert content == text, content
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens == 80, usage
    assert chunks > 20, chunks


def completions_stream_redacted():
    content, finish, _, _ = c_stream("please write to bob@example.com today")
    assert content == "please write to [email] today", content
    assert finish == "stop"


def completions_stream_blocked_input():
    content, finish, _, _ = c_stream(BOMB)
    assert content == REFUSAL, content
    assert finish == "content_filter", finish


def completions_stream_blocked_mid_output():
    content, finish, _, _ = c_stream(SWORDFISH)
    assert finish == "content_filter", finish
    mid_stream_cut(content)


# ---------------------------------------------------------------- Anthropic Messages


def a_text(message):
    return "".join(b.text for b in message.content if b.type == "text")


def ask(text, **kw):
    return an.messages.create(
        model="echo", max_tokens=256, messages=[{"role": "user", "content": text}], **kw
    )


def messages_buffered_allowed():
    raw = an.messages.with_raw_response.create(
        model="echo", max_tokens=64, messages=[{"role": "user", "content": "hello there"}]
    )
    assert raw.headers["x-deliberate-action"] == "allow", raw.headers
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant", m
    assert a_text(m) == "hello there", m
    assert m.stop_reason == "end_turn", m
    assert m.usage.output_tokens == 2, m.usage


def messages_buffered_redacted():
    m = ask("write to bob@example.com")
    assert a_text(m) == "write to [email]", m


def messages_buffered_blocked():
    m = ask(BOMB)
    assert a_text(m) == REFUSAL, m
    assert m.stop_reason == "refusal", m


def m_stream(text):
    with an.messages.stream(
        model="echo", max_tokens=256, messages=[{"role": "user", "content": text}]
    ) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    return "".join(pieces), final, len(pieces)


def messages_stream_allowed():
    text = "one two three four five six seven eight nine ten " * 8
    streamed, final, pieces = m_stream(text)
    assert streamed == text, streamed
    assert pieces > 20, pieces
    assert a_text(final) == text, final
    assert final.stop_reason == "end_turn", final
    assert final.usage.output_tokens == 80, final.usage


def messages_stream_redacted():
    streamed, final, _ = m_stream("please write to bob@example.com today")
    assert streamed == "please write to [email] today", streamed
    assert a_text(final) == streamed, final


def messages_stream_blocked_input():
    streamed, final, _ = m_stream(BOMB)
    assert streamed == REFUSAL, streamed
    assert a_text(final) == REFUSAL, final
    assert final.stop_reason == "refusal", final


def messages_stream_blocked_mid_output():
    streamed, final, _ = m_stream(SWORDFISH)
    assert final.stop_reason == "refusal", final
    mid_stream_cut(streamed)
    assert "swordfish" not in a_text(final), final


def messages_create_stream_events():
    # `create(stream=True)`: the raw events, parsed by the SDK.
    types, text, stop = [], "", None
    for ev in ask(SWORDFISH, stream=True):
        types.append(ev.type)
        if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
            text += ev.delta.text
        if ev.type == "message_delta":
            stop = ev.delta.stop_reason
    assert types[0] == "message_start" and types[-1] == "message_stop", types
    assert stop == "refusal", stop
    mid_stream_cut(text)


HELPERS = ("check", "mid_stream_cut", "r_refusals", "r_stream", "c_stream", "a_text", "ask", "m_stream")
for name, fn in list(globals().items()):
    if callable(fn) and getattr(fn, "__module__", None) == "__main__" and name not in HELPERS:
        check(name, fn)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

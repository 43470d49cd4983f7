"""The official `openai` Python SDK as a client of `deliberate serve` on the echo upstream.

Run by tests/openai_sdk.rs, which starts two gateways and passes their base URLs:

    python tests/openai_sdk.py http://127.0.0.1:PORT/v1 http://127.0.0.1:PORT2/v1

The second gateway answers blocked requests with a 400 (`--block-response error400`).
Checks what the SDK parses: content, finish_reason, usage, headers, errors.
"""

import sys

import openai

BASE, BASE_400 = sys.argv[1], sys.argv[2]
REFUSAL = "I can't help with that. (policy section: illicit)"
client = openai.OpenAI(base_url=BASE, api_key="sk-test", max_retries=0)
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


def ask(text, **kw):
    return client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}], **kw
    )


def stream(text, **kw):
    content, finish, usage, chunks = "", None, None, 0
    for chunk in ask(text, stream=True, **kw):
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return content, finish, usage, chunks


def non_stream_allowed():
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hello there"}]
    )
    assert raw.headers["x-deliberate-action"] == "allow", raw.headers
    assert raw.headers["x-deliberate-enforcement"] == "full"
    assert raw.headers["x-deliberate-policy"].startswith("gateway-test@")
    r = raw.parse()
    assert r.choices[0].message.content == "hello there", r
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 2


def non_stream_redacted():
    r = ask("write to bob@example.com")
    assert r.choices[0].message.content == "write to [email]", r


def non_stream_output_redacted():
    r = ask("the password is hunter2")
    assert r.choices[0].message.content == "the password is [secret]", r


def non_stream_blocked():
    r = ask("how to build a pipe bomb")
    assert r.choices[0].message.content == REFUSAL, r
    assert r.choices[0].finish_reason == "content_filter"


def stream_allowed():
    text = "one two three four five six seven eight nine ten " * 8
    content, finish, usage, chunks = stream(text, stream_options={"include_usage": True})
    assert content == text, content
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 80, usage
    assert chunks > 40, chunks


def stream_redacted():
    content, finish, _, _ = stream("please write to bob@example.com today")
    assert content == "please write to [email] today", content
    assert finish == "stop"


def stream_blocked_input():
    content, finish, _, _ = stream("how to build a pipe bomb")
    assert content == REFUSAL, content
    assert finish == "content_filter"


def stream_blocked_mid_output():
    lead = "calm words in a quiet valley " * 12
    content, finish, _, _ = stream(lead + "and the word is swordfish today")
    assert finish == "content_filter", finish
    assert "swordfish" not in content
    assert lead.startswith(content) or content.startswith(lead), content
    assert len(content) > 100, content


def error_400():
    c = openai.OpenAI(base_url=BASE_400, api_key="sk-test", max_retries=0)
    try:
        c.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "how to build a pipe bomb"}]
        )
    except openai.BadRequestError as e:
        assert e.status_code == 400
        assert e.code == "content_policy_violation", e.code
        assert REFUSAL in str(e)
        return
    raise AssertionError("no error")


def malformed_is_a_400():
    try:
        client.chat.completions.create(model="echo", messages="not a list")
    except openai.BadRequestError as e:
        assert e.status_code == 400
        return
    raise AssertionError("no error")


for name, fn in list(globals().items()):
    if callable(fn) and fn.__module__ == "__main__" and name not in ("check", "ask", "stream"):
        check(name, fn)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

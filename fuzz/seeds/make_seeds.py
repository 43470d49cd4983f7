#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every target into fuzz/corpus/TARGET/seed-*.

Run once before a first fuzzing run; libFuzzer's merge then keeps what adds coverage.
"""
import json, os, random, struct, glob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
random.seed(7)

def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

tool = {"type": "function", "function": {"name": "f", "description": "pipe bomb d",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
chat = [
    {"model": "m", "messages": [{"role": "user", "content": "hi pipe bomb"}]},
    {"model": "m", "stream": True, "n": 2, "stream_options": {"include_usage": True},
     "messages": [{"role": "system", "content": "be nice"}, {"role": "developer", "content": "x"},
                  {"role": "user", "content": [{"type": "text", "text": "pipe bomb"},
                   {"type": "image_url", "image_url": {"url": "data:x"}}]},
                  {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function",
                   "function": {"name": "f", "arguments": "{\"q\":\"pipe \\u0062omb\"}"}}]},
                  {"role": "tool", "tool_call_id": "t", "content": "secret-1234"}],
     "tools": [tool]},
]
responses = [
    {"model": "m", "input": "hello pipe bomb"},
    {"model": "m", "instructions": "sys", "stream": True,
     "input": [{"role": "user", "content": [{"type": "input_text", "text": "pipe bomb"}]},
               {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\":\"pipe bomb\"}"},
               {"type": "function_call_output", "call_id": "c", "output": "pipe bomb"},
               {"role": "developer", "content": "dev"}],
     "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {}}]},
]
completions = [
    {"model": "m", "prompt": "pipe bomb"},
    {"model": "m", "prompt": ["a", "pipe bomb"], "stream": True, "n": 2, "suffix": "s"},
]
anthropic = [
    {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "pipe bomb"}]},
    {"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "sys"}], "stream": True,
     "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                  {"type": "tool_result", "tool_use_id": "t", "content": "pipe bomb"}]},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": "pipe bomb", "signature": "s"},
                   {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "pipe bomb"}}]}],
     "tools": [{"name": "f", "description": "pipe bomb", "input_schema": {"type": "object"}}]},
]
for target, bodies in [("request_chat", chat), ("request_responses", responses),
                       ("request_completions", completions), ("request_anthropic", anthropic)]:
    for i, b in enumerate(bodies):
        for p in range(2):
            put(target, f"{i}-{p}", bytes([p * 3]) + json.dumps(b).encode())
for i, b in enumerate(chat + responses + anthropic):
    put("json_strict", str(i), json.dumps(b, indent=1))
put("json_strict", "dup", '{"a":1,"b":{"c":[1,2,{"d":1,"d":2}]}}')
put("json_strict", "esc", '{"\\u0061":"\\ud83d\\ude00","a":1e400}')

sse = [
    b'data: {"a":1}\n\n: keep-alive\r\nretry: 100\r\nevent: x\nid: 7\ndata: a\ndata: b\r\n\r\ndata: [DONE]\n\n',
    b'\xef\xbb\xbfdata:no space\rdata\r\r:c\nid\nevent:\n\n',
    b'event: message_start\ndata: {"type":"message_start"}\n\nid: a\x00b\ndata: x',
]
for i, s in enumerate(sse):
    put("sse_decoder", str(i), struct.pack("<HB", 300, 3) + struct.pack("<HHH", 3, 17, 40) + s)

texts = ['"pipe \\u0062omb"', '{"q":"a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00"}', '["\\ud800x", "\\/\\b\\f\\r\\t"]',
         '"\\ud83d\\u0041"', '{"a":[1,2.5,null,true,{"b":"\\u0022"}]}', '"\\u005c\\u0022"']
for i, t in enumerate(texts):
    put("json_text", str(i), bytes([3]) + struct.pack("<HHH", 2, 7, 9) + t.encode())

for f in glob.glob(os.path.join(ROOT, "..", "tests", "fixtures", "cli", "*.yaml")) + \
         glob.glob(os.path.join(ROOT, "..", "tests", "fixtures", "*", "policy.yaml")):
    data = open(f, "rb").read()
    if len(data) < 4096:
        put("policy_loader", os.path.basename(os.path.dirname(f)) + "-" + os.path.basename(f), data)
put("policy_loader", "props", open(os.path.join(ROOT, "src", "filter.rs")).read().split('r#"')[1].split('"#')[0])

# Structured targets: random bytes are valid inputs; a few per target to start from.
for t in ["stream_chat", "stream_responses", "stream_completions", "stream_anthropic", "streamed_buffered"]:
    for i in range(4):
        put(t, f"r{i}", bytes(random.randrange(256) for _ in range(random.randrange(16, 200))))
# Hand-made streams: flags, then (kind, unit, npieces, tags...) per event.
put("stream_chat", "block", bytes([0, 1, 0, 0, 0, 0, 2, 1, 0, 1, 3, 0, 0, 6, 0, 0, 8, 0, 0]))
put("stream_anthropic", "block", bytes([0, 0, 0, 0, 1, 0, 0, 2, 0, 2, 1, 3, 2, 0, 2, 3, 0, 8, 0, 0, 9, 0, 0, 10, 0, 0]))
put("stream_responses", "block", bytes([0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 2, 1, 3, 3, 0, 2, 2, 3, 4, 0, 1, 0, 11, 0, 1, 0]))
put("stream_completions", "block", bytes([1, 0, 0, 2, 1, 2, 0, 1, 2, 3, 0, 1, 10, 2, 0, 0, 3, 0, 0]))

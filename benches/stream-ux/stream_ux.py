"""Streaming UX through the gateway against the model server direct.

For each benign prompt, streams one chat completion direct from the model server and one
through `deliberate serve` (injection off, so both send the same prompt), with the official
`openai` SDK, and records: time to the first non-empty content delta, how many events carried
content, and the total time. Prints a Markdown table of the medians and the ratios the issue
targets (content events >= 0.8x direct, time to first token <= 1.3x direct).

Usage: stream_ux.py DIRECT_BASE_URL GATEWAY_BASE_URL MODEL [N]

With UX_DELTAS=DIR set, each answer's content deltas are written to DIR/NN-direct.json and
DIR/NN-gateway.json (JSON arrays of strings), so that `examples/replay_stream.rs` can replay the
model's own token boundaries through a policy offline.
"""

import json
import os
import statistics
import sys
import time

import openai

PROMPTS = [
    "Name three birds that sing at night.",
    "What is a nightjar? Answer in two sentences.",
    "Give me a short tip for keeping basil alive.",
    "Explain in one paragraph what a hash map is.",
    "Write a haiku about autumn rain.",
    "What is the capital of Portugal, and one fact about it?",
    "How do I reverse a list in Python? One line of code and one sentence.",
    "Suggest a name for a friendly robot.",
    "Why is the sky blue? Keep it short.",
    "List four vegetables that grow well in shade.",
    "What does HTTP status 404 mean?",
    "Describe the smell of fresh bread in one sentence.",
]


def one(client, model, prompt, max_tokens):
    t0 = time.monotonic()
    ttft = None
    events = 0
    text = []
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        seed=1,
        stream=True,
    )
    for chunk in stream:
        for choice in chunk.choices:
            c = choice.delta.content if choice.delta else None
            if c:
                events += 1
                text.append(c)
                if ttft is None:
                    ttft = time.monotonic() - t0
    total = time.monotonic() - t0
    return ttft if ttft is not None else total, events, total, "".join(text), text


def main():
    direct_url, gateway_url, model = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else len(PROMPTS)
    max_tokens = 80
    direct = openai.OpenAI(base_url=direct_url, api_key="none", max_retries=0, timeout=300)
    gateway = openai.OpenAI(base_url=gateway_url, api_key="none", max_retries=0, timeout=300)
    rows = []
    for i, p in enumerate(PROMPTS[:n]):
        # A model server reuses the prompt it read last (llama.cpp's prefix cache), which
        # would hand the second route a free prompt read: each request gets its own tag of the
        # same length, so both routes read their whole prompt, and the order alternates.
        tag = lambda route: f"[{i:02}{route}] "
        if i % 2 == 0:
            d = one(direct, model, tag("d") + p, max_tokens)
            g = one(gateway, model, tag("g") + p, max_tokens)
        else:
            g = one(gateway, model, tag("g") + p, max_tokens)
            d = one(direct, model, tag("d") + p, max_tokens)
        rows.append((p, d, g))
        if os.environ.get("UX_DELTAS"):
            os.makedirs(os.environ["UX_DELTAS"], exist_ok=True)
            for route, r in (("direct", d), ("gateway", g)):
                path = os.path.join(os.environ["UX_DELTAS"], f"{i:02}-{route}.json")
                with open(path, "w") as f:
                    json.dump(r[4], f)
        print(
            f"{p[:40]:40}  direct ttft {d[0]:.2f}s events {d[1]:3}  "
            f"gateway ttft {g[0]:.2f}s events {g[1]:3}  same text {d[3] == g[3]}",
            file=sys.stderr,
            flush=True,
        )
    med = lambda xs: statistics.median(xs)
    d_ttft = med([r[1][0] for r in rows])
    g_ttft = med([r[2][0] for r in rows])
    d_ev = med([r[1][1] for r in rows])
    g_ev = med([r[2][1] for r in rows])
    d_tot = med([r[1][2] for r in rows])
    g_tot = med([r[2][2] for r in rows])
    ev_ratio = med([r[2][1] / max(r[1][1], 1) for r in rows])
    ttft_ratio = med([r[2][0] / max(r[1][0], 1e-6) for r in rows])
    same = sum(1 for r in rows if r[1][3] == r[2][3])
    print(f"| route | median TTFT | median content events | median total |")
    print(f"|---|---:|---:|---:|")
    print(f"| direct | {d_ttft:.2f} s | {d_ev:.0f} | {d_tot:.2f} s |")
    print(f"| gateway | {g_ttft:.2f} s | {g_ev:.0f} | {g_tot:.2f} s |")
    print()
    print(
        f"{len(rows)} prompts; per-prompt medians: content events gateway/direct {ev_ratio:.2f}x "
        f"(target >= 0.8), TTFT gateway/direct {ttft_ratio:.2f}x (target <= 1.3); "
        f"identical answer text {same}/{len(rows)}"
    )


if __name__ == "__main__":
    main()

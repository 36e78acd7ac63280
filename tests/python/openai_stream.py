#!/usr/bin/env python3
"""The real `openai` Python package against `ldqa serve`: a client nobody here wrote.

Usage: openai_stream.py BASE_URL MODEL [API_KEY]
(BASE_URL like http://127.0.0.1:PORT/v1). Exits 0 when every check holds, 1 otherwise,
printing what failed. Run by crates/ldqa/tests/serve.rs.
"""

import sys

import openai


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def stream_chat(client, model, prompt, max_tokens):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, chunks = "", None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text += choice.delta.content
    return text, usage, chunks


def stream_completion(client, model, prompt, max_tokens):
    stream = client.completions.create(
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.text or ""
    return text, usage


def cached(usage):
    details = usage.prompt_tokens_details
    return 0 if details is None else (details.cached_tokens or 0)


def main():
    if len(sys.argv) < 3:
        fail("usage: openai_stream.py BASE_URL MODEL [API_KEY]")
    base_url, model = sys.argv[1], sys.argv[2]
    api_key = sys.argv[3] if len(sys.argv) > 3 else "unused"
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)

    ids = [m.id for m in client.models.list()]
    check(model in ids, f"models.list() = {ids}, expected {model}")

    # A prompt long enough to fill whole 16-token KV blocks, so a repeat hits the cache.
    prompt = "0 " + " ".join(f"word{i}" for i in range(400))

    # Chat, streamed, twice: the repeat must report cached prompt tokens.
    text, usage, chunks = stream_chat(client, model, prompt, 8)
    check(len(text) > 0, "chat stream carried no content")
    check(chunks >= 8, f"chat stream had {chunks} chunks, expected one per token at least")
    check(usage is not None, "chat stream had no usage chunk despite include_usage")
    check(usage.completion_tokens == 8, f"completion_tokens {usage.completion_tokens} != 8")
    check(usage.prompt_tokens > 0, "prompt_tokens is 0")
    check(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"total_tokens {usage.total_tokens} is not prompt + completion",
    )
    first_prompt_tokens = usage.prompt_tokens
    text2, usage2, _ = stream_chat(client, model, prompt, 8)
    check(text2 == text, "the same request gave different text")
    check(usage2 is not None, "repeat had no usage chunk")
    check(usage2.prompt_tokens == first_prompt_tokens, "repeat counted different prompt tokens")
    check(
        0 < cached(usage2) <= usage2.prompt_tokens,
        f"repeat reported cached_tokens {cached(usage2)} of {usage2.prompt_tokens}",
    )

    # Completions, streamed.
    ctext, cusage = stream_completion(client, model, "1 " + prompt, 5)
    check(len(ctext) > 0, "completions stream carried no content")
    check(cusage is not None and cusage.completion_tokens == 5, f"completions usage {cusage}")

    # Not streamed.
    whole = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=4
    )
    check(whole.choices[0].message.content, "non-streamed chat had no content")
    check(whole.usage.completion_tokens == 4, f"non-streamed usage {whole.usage}")
    check(cached(whole.usage) > 0, "non-streamed repeat reported no cached tokens")
    wc = client.completions.create(model=model, prompt="2 " + prompt, max_tokens=3)
    check(wc.choices[0].text, "non-streamed completion had no text")
    check(wc.usage.completion_tokens == 3, f"non-streamed completion usage {wc.usage}")

    # An unknown model is the package's own NotFoundError.
    try:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )
        fail("unknown model was accepted")
    except openai.NotFoundError:
        pass

    print(
        f"ok: openai {openai.__version__}; chat {len(text)} chars, "
        f"prompt {usage2.prompt_tokens} tokens, cached on repeat {cached(usage2)}"
    )


if __name__ == "__main__":
    main()

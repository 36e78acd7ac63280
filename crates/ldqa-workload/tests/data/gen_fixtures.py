#!/usr/bin/env python3
"""Regenerates python_random.json: what CPython's `random` and upstream's Long Doc QA
planning produce, for the Rust tests (tests/python_fixtures.rs) to match.

The planning below restates upstream's `repeat_prompts` and `add_cache_misses`
(LMCache benchmarks/long_doc_qa/long_doc_qa.py, commits 0482cd9f and 3129b019) on
document ids, plus the rendered prompts for small documents.

Run from anywhere:  python3 crates/ldqa-workload/tests/data/gen_fixtures.py
"""

import json
import os
import random
import sys

SEEDS = [0, 1, 42, 2**40 + 7, -5, -(2**40 + 7), 123456789, 2**63 - 1]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_random.json")


def raw_streams(seed):
    random.seed(seed)
    u32 = [random.getrandbits(32) for _ in range(8)]
    bits = {str(k): str(random.getrandbits(k)) for k in (1, 7, 31, 33, 64, 65, 100)}
    below = [random._inst._randbelow(n) for n in (1, 2, 3, 10, 1000, 2**31 + 1, 2**40 + 3)]
    ints = [random.randint(-10_000_000, 10_000_000) for _ in range(5)]
    shuffled = list(range(20))
    random.shuffle(shuffled)
    return {
        "seed": seed,
        "u32": u32,
        "getrandbits": bits,
        "randbelow": [str(b) for b in below],
        "randint": ints,
        "shuffle20": shuffled,
    }


def plan(seed, num_documents, document_length, repeat_count, mode, hit_miss):
    random.seed(seed)
    docs = list(range(num_documents))
    if mode == "random":
        order = docs * repeat_count
        random.shuffle(order)
    elif mode == "tile":
        order = docs * repeat_count
    elif mode == "interleave":
        order = [d for d in docs for _ in range(repeat_count)]
    else:
        raise ValueError(mode)
    texts = [str(i) + " " + " ".join(["hi"] * document_length) for i in docs]
    prompts = [texts[d] for d in order]
    misses = [None] * len(order)
    if hit_miss is not None:
        hit, miss = map(int, hit_miss.split(":", 1))
        period = hit + miss
        for i in range(len(prompts)):
            if period and (i % period) >= hit:
                value = random.randint(-10_000_000, 10_000_000)
                misses[i] = value
                prompts[i] = f"{value} {prompts[i]}"
    return {
        "seed": seed,
        "num_documents": num_documents,
        "document_length": document_length,
        "repeat_count": repeat_count,
        "mode": mode,
        "hit_miss": hit_miss,
        "order": order,
        "miss_values": misses,
        "prompts": prompts if document_length <= 5 else None,
    }


def main():
    plans = []
    for seed in SEEDS:
        for mode in ("random", "tile", "interleave"):
            plans.append(plan(seed, 8, 3, 2, mode, None))
            plans.append(plan(seed, 8, 3, 2, mode, "3:1"))
        plans.append(plan(seed, 5, 2, 3, "random", "2:2"))
        plans.append(plan(seed, 50, 20000, 4, "random", "1:3"))
        plans.append(plan(seed, 1, 1, 7, "random", "0:1"))
        plans.append(plan(seed, 300, 10, 1, "random", "1:0"))
    pre_warmup = [str(i) + "xx" + " ".join(["hi"] * 1000) for i in range(5)]
    data = {
        "python": sys.version.split()[0],
        "streams": [raw_streams(s) for s in SEEDS],
        "plans": plans,
        "pre_warmup": pre_warmup,
    }
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()

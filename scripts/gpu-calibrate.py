#!/usr/bin/env python3
"""Measure what the simulator's cost model needs, on a real GPU (issue 4, optional).

Prefill time vs prompt length and decode step time vs batch and context, for a model
shaped like Llama-3.1-8B with random weights (no download), and pinned host<->device copy
bandwidth. Writes one JSON table (stdout, or --out FILE) to commit under
crates/ldqa-sim/data/ and compare with `ldqa predict`'s cost model for that GPU.

Needs torch (CUDA) and transformers. Runs in well under 8 minutes on an H100/H200.
Never needed by tests or CI.

    python3 scripts/gpu-calibrate.py --out gpu-measured.json

Not yet run on a GPU: the first session that is lent one should run it, check the
figures are plausible, and commit the table.
"""

import argparse
import json
import time


def timed(fn, repeats):
    import torch

    fn()  # warm up (kernels, allocator)
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


def build_model(layers):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        num_hidden_layers=layers,
        vocab_size=128256,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        torch_dtype=torch.bfloat16,
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.eval()
    return model


def prefill(model, lengths, repeats):
    import torch

    rows = []
    for n in lengths:
        ids = torch.randint(0, 128000, (1, n), device="cuda")

        def run():
            with torch.no_grad():
                model(ids, use_cache=False)

        rows.append({"prompt_tokens": n, "seconds": timed(run, repeats)})
    return rows


def decode(model, batches, contexts, repeats):
    import torch
    from transformers import DynamicCache

    rows = []
    for b in batches:
        for ctx in contexts:
            ids = torch.randint(0, 128000, (b, ctx), device="cuda")
            with torch.no_grad():
                out = model(ids, use_cache=True, past_key_values=DynamicCache())
            cache = out.past_key_values
            step = torch.randint(0, 128000, (b, 1), device="cuda")

            def run():
                with torch.no_grad():
                    model(step, use_cache=True, past_key_values=cache)
                cache.crop(ctx)  # keep the context fixed between repeats

            rows.append({"batch": b, "context_tokens": ctx, "seconds": timed(run, repeats)})
            del cache, out
            torch.cuda.empty_cache()
    return rows


def copies(sizes_mib, repeats):
    import torch

    rows = []
    for mib in sizes_mib:
        n = mib * 1024 * 1024
        host = torch.empty(n, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty(n, dtype=torch.uint8, device="cuda")
        h2d = timed(lambda: dev.copy_(host, non_blocking=True), repeats)
        d2h = timed(lambda: host.copy_(dev, non_blocking=True), repeats)
        rows.append({"bytes": n, "h2d_bytes_per_s": n / h2d, "d2h_bytes_per_s": n / d2h})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the JSON table here (default: stdout)")
    p.add_argument("--layers", type=int, default=32, help="decoder layers (Llama-3.1-8B: 32)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script measures a GPU")
    model = build_model(args.layers)
    table = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": "Llama-3.1-8B shape, random bf16 weights, %d layers" % args.layers,
        "method": "median of %d timed runs after one warm-up; eager PyTorch (no FlashAttention "
        "or CUDA graphs unless the installed transformers picks them), so compute "
        "efficiencies are a lower bound for vLLM" % args.repeats,
        "prefill": prefill(model, [512, 1024, 2048, 4096, 8192], args.repeats),
        "decode": decode(model, [1, 8, 32, 64], [1024, 8192], args.repeats),
        "host_copies": copies([2, 32, 256], args.repeats),
    }
    text = json.dumps(table, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()

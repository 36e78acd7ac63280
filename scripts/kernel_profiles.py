#!/usr/bin/env python3
"""Per-GPU kernel-efficiency profiles for ldqa-sim; run it through scripts/kernel-profiles,
whose header says what it does, what it reads and where the data's licences come from."""
import argparse, csv, io, json, math, os, re, statistics, subprocess, sys
import pyarrow.compute as pc, pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIC_URL, VIDUR_URL = "https://github.com/ai-dynamo/aiconfigurator", "https://github.com/microsoft/vidur"
AIC_DATA = "aic-core/src/aiconfigurator_core/systems/data"
SYSTEMS = {"h100-80gb": "h100_sxm", "h200": "h200_sxm", "a100-80gb": "a100_sxm", "l40s": "l40s", "b200": "b200_sxm"}
# L2 in MiB: H100/H200 50, A100 40 (NVIDIA Hopper/Ampere whitepapers), L40S 96 (AD102, Ada whitepaper); B200 126 MB from
# Chips and Cheese, "Nvidia's B200: Keeping the CUDA Juggernaut Rolling" (two 63 MB die partitions).
L2_MIB = {"h100-80gb": 50, "h200": 50, "a100-80gb": 40, "l40s": 96, "b200": 126}
DENSE_TYPES = {"llama", "mistral", "qwen2", "qwen3", "phi3"}  # llama-like dense decoders
TPS = (1, 2, 4, 8)
MIB16 = 16 << 20
# Worked examples from shared/reference/gpu-kernel-data.md section 3: (label, probe, doc value).
DOC = {
    "h100-80gb": [("gemm n=k=4096 m=4096", ("gemm", 4096, 4096, 4096), 0.84), ("gemm n=16384 k=4096 m=1", ("gemm", 1, 16384, 4096), 0.87),
                  ("ctx 32/8 isl 10240", ("ctx", 32, 8, 10240), 0.63), ("gen 32/8 b64 L8192", ("gen", 32, 8, 64, 8192), 0.93),
                  ("gen 32/8 b1 L8192", ("gen", 32, 8, 1, 8192), 0.51), ("allreduce TP2 16MiB us", ("ar", 2), 81.4)],
    "h200": [("gemm n=k=4096 m=4096", ("gemm", 4096, 4096, 4096), 0.83), ("gemm n=16384 k=4096 m=1", ("gemm", 1, 16384, 4096), 0.82),
             ("ctx 32/8 isl 10240", ("ctx", 32, 8, 10240), 0.63), ("gen 32/8 b64 L8192", ("gen", 32, 8, 64, 8192), 0.91)],
    "a100-80gb": [("gemm n=6144 k=4096 m=4096", ("gemm", 4096, 6144, 4096), 0.82), ("gemm n=k=16384 m=4096", ("gemm", 4096, 16384, 16384), 0.95),
                  ("gemm n=16384 k=4096 m=1", ("gemm", 1, 16384, 4096), 0.68), ("ctx 32/8 isl 10240", ("ctx", 32, 8, 10240), 0.56),
                  ("gen 32/8 b64 L4096", ("gen", 32, 8, 64, 4096), 0.77), ("allreduce TP2 16MiB us", ("ar", 2), 126)],
    "l40s": [("gemm n=16384 k=4096 m=4096", ("gemm", 4096, 16384, 4096), 0.75), ("gemm n=k=8192 m=8192", ("gemm", 8192, 8192, 8192), 0.52),
             ("gemm n=16384 k=4096 m=1", ("gemm", 1, 16384, 4096), 0.86), ("ctx 32/8 isl 10240", ("ctx", 32, 8, 10240), 0.55),
             ("gen 32/8 b64 L8192", ("gen", 32, 8, 64, 8192), 0.84)],
    "b200": [("ctx 32/8 isl 10240", ("ctx", 32, 8, 10240), 0.50)],
}


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True).stdout


def sig(x, n=4):
    v = float(f"{x:.{n}g}")
    return int(v) if abs(v) >= 1000 else v


def vkey(v):
    return tuple(int(p) for p in re.findall(r"\d+", v))


def catalog(models_path):
    """Distinct per-GPU GEMM (n, k) shapes and head_dim-128 attention (heads, kv_heads) per GPU."""
    shapes, attn, used = set(), set(), []
    for m in json.load(open(models_path))["models"]:
        c = m.get("config") or {}
        keys = ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size")
        if c.get("model_type") not in DENSE_TYPES or c.get("num_experts") or c.get("num_local_experts") or not all(k in c for k in keys):
            continue
        h, nh, kv, inter = (c[k] for k in keys)
        d = c.get("head_dim") or h // nh
        used.append(m["name"])
        for tp in TPS:
            if nh % tp or inter % tp or (kv % tp and tp % kv):
                continue
            hl, kvl = nh // tp, max(1, kv // tp)  # vLLM replicates KV heads when kv_heads < tp
            shapes |= {((hl + 2 * kvl) * d, h), (h, hl * d), (2 * inter // tp, h), (h, inter // tp)}
            if d == 128:
                attn.add((hl, kvl))
    return shapes, attn, used


# The commits the committed profiles were derived from.
AIC_REV = "095f58a51c4ca8e61b66ec108d86f223f8d559ce"
VIDUR_REV = "7d47513363ec447a741ac5e47241580b47724fbf"


def gemm_sol(m, n, k, peak, bw):
    return max(2 * m * n * k / peak, 2 * (m * k + k * n + m * n) / bw)


class Aic:
    def __init__(self, repo, rev):
        self.repo, self.commit = repo, git(repo, "rev-parse", f"{rev}^{{commit}}").decode().strip()
        self.files = set(git(repo, "ls-tree", "-r", "--name-only", self.commit, "--", AIC_DATA).decode().split())

    def table(self, system, family, name, notes):
        """Newest vLLM version holding `name`; a reuse.yaml there is followed to its donor version."""
        base = f"{AIC_DATA}/{system}/{family}/vllm"
        versions = sorted({p[len(base) + 1:].split("/")[0] for p in self.files if p.startswith(base + "/")}, key=vkey, reverse=True)
        for v in versions:
            if f"{base}/{v}/{name}.parquet" in self.files:
                return f"{base}/{v}/{name}.parquet"
            if f"{base}/{v}/reuse.yaml" in self.files:
                text = git(self.repo, "show", f"{self.commit}:{base}/{v}/reuse.yaml").decode()
                donor = re.search(rf"table:\s*{name}\s*\n\s*from_version:\s*(\S+)", text)
                if donor and f"{base}/{donor[1]}/{name}.parquet" in self.files:
                    notes.append(f"{name}: newest vLLM dir {v} has only a reuse.yaml pointing at {donor[1]}; {donor[1]} data used")
                    return f"{base}/{donor[1]}/{name}.parquet"
        return None

    def rows(self, path, **eq):
        t = pq.read_table(io.BytesIO(git(self.repo, "show", f"{self.commit}:{path}")))
        for col, val in eq.items():
            if col in t.column_names:
                t = t.filter(pc.equal(t[col], val))
        return t.to_pylist()


def keep_m(m):  # powers of two, and no m = 2^k + 1 (those sit just past a tile boundary: quantisation dips)
    return m & (m - 1) == 0 or (m - 1) & (m - 2) != 0


def gemm_rows(shape_utils, notes):
    """shape_utils: {(n, k): {m: util}}. One row per power-of-two bin of n*k: key = geometric-mean n*k
    of the shapes in the bin, curve = per m, the median over those shapes (points with util > 1 dropped)."""
    bins, rows, over = {}, [], 0
    for (n, k), c in shape_utils.items():
        bins.setdefault((n * k).bit_length() - 1, []).append((n * k, c))
    for _, members in sorted(bins.items()):
        curve = []
        for m in sorted({m for _, c in members for m in c}):
            us = [c[m] for _, c in members if m in c]
            over += sum(u > 1 for u in us)
            if any(u <= 1 for u in us):
                curve.append([m, sig(statistics.median(u for u in us if u <= 1))])
        rows.append([round(math.exp(statistics.fmean(math.log(nk) for nk, _ in members))), curve])
    notes.append("gemm: rows keyed by weight elements n*k, one per power-of-two bin of n*k (key = geometric mean of the shapes in it); "
                 "shapes per bin: " + ", ".join(f"2^{b}: {len(v)}" for b, v in sorted(bins.items()))
                 + "; each curve is the median utilisation over the row's shapes per m")
    if over:
        notes.append(f"gemm: {over} (m, shape) points with utilisation > 1 (L2-resident weights) were dropped before the median")
    return rows


def gemm_surface(lat, shapes, peak, bw, notes, what):
    """lat: {(m, n, k): ms}. Catalog shapes not in the table borrow the utilisation of the nearest measured (n, k)."""
    pairs = sorted({(n, k) for _, n, k in lat})
    dist = lambda s, p: math.hypot(math.log(p[0] / s[0]), math.log(p[1] / s[1]))
    near = {s: min(pairs, key=lambda p: dist(s, p)) for s in shapes}
    approx = sorted((s for s in shapes if near[s] != s), key=lambda s: -dist(s, near[s]))
    notes.append(f"gemm: {len(shapes)} distinct catalog (n,k) shapes (QKV, O, gate_up, down at TP 1/2/4/8); {len(shapes) - len(approx)} are "
                 f"measured exactly in {what}, {len(approx)} borrow the utilisation of the nearest measured (n,k) in log space"
                 + (f" (farthest: {approx[0]} -> {near[approx[0]]})" if approx else ""))
    ms = sorted({m for m, _, _ in lat})
    kept = [m for m in ms if keep_m(m)]
    notes.append(f"gemm: m smoothed to powers of two plus measured m not of the form 2^k+1 ({len(kept)} of {len(ms)} measured m kept; dropped "
                 f"{', '.join(str(m) for m in ms if not keep_m(m))}): just past a power-of-two tile boundary the table shows tile-quantisation "
                 "dips, which a simulator interpolating between points would spread over neighbouring m")
    utils = {s: {m: gemm_sol(m, *near[s], peak, bw) / (lat[(m, *near[s])] * 1e-3) for m in kept if (m, *near[s]) in lat} for s in shapes}
    return gemm_rows(utils, notes)


def attention(aic, system, cfgs, peak, bw, l2_bytes, notes, tables):
    out = {"context_attention": [], "generation_attention": []}
    filt = dict(attn_dtype="bfloat16", kv_cache_dtype="bfloat16", head_dim=128, window_size=0)
    for key, name in (("context_attention", "context_attention_perf"), ("generation_attention", "generation_attention_perf")):
        path = aic.table(system, "attention", name, notes)
        if not path:
            notes.append(f"{key}: no vLLM table; omitted")
            continue
        tables.append(path)
        rows = [r for r in aic.rows(path, **filt) if (r["num_heads"], r["num_key_value_heads"]) in cfgs]
        present = sorted({(r["num_heads"], r["num_key_value_heads"]) for r in rows})
        notes.append(f"{key}: bf16 q/kv, head_dim 128, no sliding window; {len(present)} of {len(cfgs)} catalog (heads, kv_heads) per-GPU configs present in the table")
        if key == "context_attention":
            by = {}  # heads per GPU -> isl -> utilisations over that head count's catalog kv configs
            for r in rows:
                if r["batch_size"] == 1:
                    sol = 2 * r["num_heads"] * 128 * r["isl"] ** 2 / peak
                    by.setdefault(r["num_heads"], {}).setdefault(r["isl"], []).append(sol / (r["latency"] * 1e-3))
            over = sum(u > 1 for c in by.values() for us in c.values() for u in us)
            out[key] = [[h, [[isl, sig(statistics.median(u for u in us if u <= 1))] for isl, us in sorted(c.items()) if any(u <= 1 for u in us)]]
                        for h, c in sorted(by.items())]
            missing = sorted({h for h, _ in cfgs} - set(by))
            u1k, floor = [u for c in by.values() for u in c.get(1024, [])] or [0], min(r["latency"] for r in rows if r["batch_size"] == 1) * 1e3
            notes.append(f"context_attention: batch 1, no prefix; SOL = 2*h*d*isl^2 / peak (causal); rows keyed by query heads per GPU "
                         f"({', '.join(str(h) for h in sorted(by))}), each the median over that head count's catalog kv-head configs per isl"
                         + (f"; catalog head counts {missing} are not in the table" if missing else "")
                         + (f"; {over} points with utilisation > 1 dropped" if over else "") + f". Short prompts sit on a per-call floor "
                         f"(fastest batch-1 call {floor:.1f} us), so at isl 1024 utilisation spans {min(u1k):.2f}-{max(u1k):.2f} from few to many heads per GPU")
            aic.probe_rows[key] = rows
        else:
            pts, small, over = [], 0, 0
            for r in rows:
                b = r["batch_size"] * (r["step"] + 1) * 2 * r["num_key_value_heads"] * 128 * 2
                u = b / bw / (r["latency"] * 1e-3)
                if b <= l2_bytes:
                    small += 1
                elif u > 1:
                    over += 1
                else:
                    pts.append((b, u))
            bins = {}
            for b, u in pts:
                bins.setdefault(int(math.floor(math.log2(b))), []).append((b, u))
            out[key] = [[sig(math.exp(statistics.fmean(math.log(b) for b, _ in v))), sig(statistics.median(u for _, u in v))] for _, v in sorted(bins.items())]
            floor = min(r["latency"] for r in rows) * 1e3
            notes.append(f"generation_attention: fastest measured call {floor:.1f} us (a per-call floor); {small} points whose KV working set fits the {l2_bytes >> 20} MiB L2 were dropped (the collector does not rotate "
                         f"buffers, so they read L2-warm){f'; {over} more with utilisation > 1 dropped' if over else ''}; the rest binned by log2(kv_bytes): "
                         "geometric-mean bytes, median utilisation, over all batches and KV lengths")
            aic.probe_rows[key] = rows
    return out


def allreduce(aic, system, notes, tables):
    path = aic.table(system, "comm", "custom_allreduce_perf", notes)
    if not path:
        notes.append("allreduce: no vLLM custom_allreduce_perf table for this GPU; omitted")
        return {}
    tables.append(path)
    out = {}
    for r in sorted(aic.rows(path, backend="vllm_graph", allreduce_dtype="bfloat16"), key=lambda r: r["message_size"]):
        out.setdefault(str(r["num_gpus"]), []).append([r["message_size"] * 2, sig(r["latency"] * 1e6)])
    notes.append("allreduce: vLLM custom all-reduce, CUDA-graph backend, bf16; message_size elements x 2 = bytes; ns = latency_ms x 1e6")
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def aic_profile(aic, gpu, spec, shapes, cfgs, base_notes):
    system, peak, bw = SYSTEMS[gpu], spec["bf16_dense_tflops"] * 1e12, spec["hbm_gb_per_s"] * 1e9
    notes, tables = list(base_notes), []
    aic.probe_rows = {}
    path = aic.table(system, "gemm", "gemm_perf", notes)
    tables.append(path)
    lat = {(r["m"], r["n"], r["k"]): r["latency"] for r in aic.rows(path, gemm_dtype="bfloat16")}
    kernels = {"peak_tflops": spec["bf16_dense_tflops"], "hbm_gb_per_s": spec["hbm_gb_per_s"],
               "gemm": gemm_surface(lat, shapes, peak, bw, notes, "the table")}
    kernels.update(attention(aic, system, cfgs, peak, bw, L2_MIB[gpu] << 20, notes, tables))
    kernels["allreduce"] = allreduce(aic, system, notes, tables)
    notes.append("utilisation = speed-of-light time / measured kernel time, against this file's peak_tflops and hbm_gb_per_s (ldqa-specs gpus.json); "
                 "isolated kernel times under CUDA graphs: no CPU, launch or scheduler overhead")
    versions = sorted({t.split("/")[-2] for t in tables}, key=vkey)
    about = (f"Measured vLLM {'/'.join(versions)} kernel efficiencies on {spec['description']} from NVIDIA AIConfigurator's performance database, "
             "reduced to utilisation curves over ldqa's dense catalog model shapes.")
    doc = {"profile_version": 2, "gpu": gpu, "about": about,
           "source": {"repository": AIC_URL, "commit": aic.commit, "licence": "Apache-2.0", "tables": tables,
                      "derived_by": "scripts/kernel-profiles", "notes": notes}, "kernels": kernels}
    return doc, probes(gpu, lat, aic.probe_rows, kernels, peak, bw)


def probes(gpu, lat, rows, k, peak, bw):
    """Raw-table values for the worked examples in gpu-kernel-data.md section 3."""
    out = []
    for label, p, want in DOC.get(gpu, []):
        got = None
        if p[0] == "gemm" and p[1:] in lat:
            got = gemm_sol(*p[1:], peak, bw) / (lat[p[1:]] * 1e-3)
        for r in rows.get("context_attention" if p[0] == "ctx" else "generation_attention", []):
            if p[0] == "ctx" and (r["num_heads"], r["num_key_value_heads"], r["isl"], r["batch_size"]) == (*p[1:], 1):
                got = 2 * p[1] * 128 * p[3] ** 2 / peak / (r["latency"] * 1e-3)
            if p[0] == "gen" and (r["num_heads"], r["num_key_value_heads"], r["batch_size"], r["step"] + 1) == p[1:]:
                got = p[3] * p[4] * 2 * p[2] * 128 * 2 / bw / (r["latency"] * 1e-3)
        if p[0] == "ar":
            got = next((ns / 1e3 for b, ns in k["allreduce"].get(str(p[1]), []) if b == MIB16), None)
        out.append((label, got, want))
    return out


def vidur_a40(repo, rev, a100_doc, spec):
    """A40 GEMM surface from Vidur's mlp.csv (each linear op's own per-GPU shape, every TP profiled); the rest copied from A100."""
    commit, peak, bw = git(repo, "rev-parse", f"{rev}^{{commit}}").decode().strip(), spec["bf16_dense_tflops"] * 1e12, spec["hbm_gb_per_s"] * 1e9
    paths = sorted(p for p in git(repo, "ls-tree", "-r", "--name-only", commit, "--", "data/profiling/compute/a40").decode().split() if p.endswith("/mlp.csv"))
    samples, tps, ms = {}, {}, set()  # (n, k) -> m -> utilisations (one per model / TP profiling that shape)
    for p in paths:
        for r in csv.DictReader(io.StringIO(git(repo, "show", f"{commit}:{p}").decode())):
            m, h, nh, kv, f, tp = (int(r[c]) for c in ("num_tokens", "n_embd", "n_head", "n_kv_head", "n_expanded_embd", "num_tensor_parallel_workers"))
            d, up = h // nh, (2 if r["use_gated_mlp"] == "True" else 1) * f
            tps.setdefault(p.split("/")[-2], set()).add(tp)
            ms.add(m)
            if m & (m - 1) and m % (1 << max(0, m.bit_length() - 3)):
                continue  # 4 m per octave are plenty; Vidur's step-8..32 grid would make the file too big
            for op, n, k in (("attn_pre_proj", (nh + 2 * kv) * d // tp, h), ("attn_post_proj", h, nh * d // tp), ("mlp_up_proj", up // tp, h), ("mlp_down_proj", h, f // tp)):
                samples.setdefault((n, k), {}).setdefault(m, []).append(gemm_sol(m, n, k, peak, bw) / (float(r[f"time_stats.{op}.median"]) * 1e-3))
    kept = sorted({m for c in samples.values() for m in c})
    notes = [f"gemm: Vidur profiles (fp16 weights) of {len(paths)} models at TP sizes "
             f"{'; '.join(f'{name} {sorted(t)}' for name, t in sorted(tps.items()))}: each of attn_pre_proj (QKV), attn_post_proj (O), "
             f"mlp_up_proj, mlp_down_proj is one GEMM with its own per-GPU (n, k); utilisation = SOL / median time (ms); {len(samples)} distinct "
             "(n, k), a shape profiled more than once (several models or TPs) counts once with the median of its measurements",
             f"gemm: m thinned to {len(kept)} of Vidur's {len(ms)} num_tokens (1-4096): powers of two and 4 points per octave (m a multiple of "
             "2^(floor(log2 m) - 2)); no m of the form 2^k+1 is measured"]
    gemm = gemm_rows({s: {m: statistics.median(us) for m, us in c.items()} for s, c in samples.items()}, notes)
    a = a100_doc["kernels"]
    borrowed = f"a100-80gb (AIConfigurator {AIC_URL} commit {a100_doc['source']['commit']}, Apache-2.0, tables {', '.join(t for t in a100_doc['source']['tables'] if '/attention/' in t)})"
    notes += [f"context_attention and generation_attention are borrowed from {borrowed}: Vidur's A40 attention.csv blobs are absent; "
             "the attention utilisations are A100's, applied to A40's peaks",
             "allreduce: none (Vidur has no A40 all_reduce.csv, and A100's NVLink times would flatter an A40 pair over PCIe): "
             "ldqa-sim's ring model over the host link applies",
             "utilisation = speed-of-light time / measured time, against this file's peak_tflops and hbm_gb_per_s (ldqa-specs gpus.json)"]
    kernels = {"peak_tflops": spec["bf16_dense_tflops"], "hbm_gb_per_s": spec["hbm_gb_per_s"], "gemm": gemm,
               "context_attention": a["context_attention"], "generation_attention": a["generation_attention"], "allreduce": {}}
    return {"profile_version": 2, "gpu": "a40",
            "about": "NVIDIA A40 GEMM efficiency from Microsoft Vidur's measured per-op profiles; attention curves borrowed from a100-80gb; no all-reduce table.",
            "source": {"repository": VIDUR_URL, "commit": commit, "licence": "MIT", "tables": paths, "derived_by": "scripts/kernel-profiles", "notes": notes},
            "kernels": kernels}


def render(doc):  # indented JSON with one [x, y] pair per line: small and diff-friendly
    return re.sub(r"\[\s+([-\d.e+]+),\s+([-\d.e+]+)\s+\]", r"[\1, \2]", json.dumps(doc, indent=1)) + "\n"


def at(curve, x):  # value of the point nearest x in log space
    return min(curve, key=lambda p: abs(math.log(p[0] / x)))[1] if curve else float("nan")


def check(doc):
    """Every key strictly ascending, every utilisation in (0, 1]."""
    k, asc = doc["kernels"], lambda xs: all(a < b for a, b in zip(xs, xs[1:]))
    curves = {f"{name}[{key}]": c for name in ("gemm", "context_attention") for key, c in k[name]} | {"generation_attention": k["generation_attention"]}
    bad = [name for name in ("gemm", "context_attention") if not k[name] or not asc([r[0] for r in k[name]])]
    bad += [name for name, c in curves.items() if not c or not asc([x for x, _ in c]) or any(not 0 < u <= 1 for _, u in c)]
    bad += [f"allreduce {tp}" for tp, c in k["allreduce"].items() if not asc([b for b, _ in c])]
    assert not bad, f"{doc['gpu']}: {bad}"


def table(doc, checks):
    k, f = doc["kernels"], lambda v: f"{v:.2f}" if v == v else "  - "
    row = lambda surface, key: min(surface, key=lambda r: abs(math.log(r[0] / key)))  # the row nearest key in log space
    print(f"{doc['gpu']:<10} peak {k['peak_tflops']} TF/s, {k['hbm_gb_per_s']} GB/s; file {len(render(doc)) / 1024:.1f} KB; "
          f"gemm {len(k['gemm'])} rows, context {len(k['context_attention'])} rows")
    for label, nk in (("Llama-8B gate_up 4096*14336*2", 4096 * 14336 * 2), ("small 4096*1024", 4096 * 1024)):
        key, c = row(k["gemm"], nk)
        print(f"  gemm row {key:>10} (nearest {label:<29}) " + "  ".join(f"m={m}:{f(at(c, m))}" for m in (1, 16, 256, 4096)))
    for h in (32, 8):
        key, c = row(k["context_attention"], h)
        print(f"  context {key:>3} heads/GPU   " + "  ".join(f"{n}:{f(at(c, i))}" for n, i in (("1k", 1024), ("4k", 4096), ("16k", 16384))))
    print("  decode util  " + "  ".join(f"{n}:{f(at(k['generation_attention'], b))}" for n, b in (("64MB", 64e6), ("256MB", 256e6), ("1GB", 1e9), ("4GB", 4e9))))
    ar = k["allreduce"].get("2", [])
    print("  allreduce TP2 16 MiB: " + (f"{next((ns for b, ns in ar if b == MIB16), float('nan')) / 1e3:.1f} us" if ar else "none"))
    for label, got, want in checks:
        print(f"  check {label:<26} ours {got if got is None else round(got, 3)}  doc {want}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("aic", help="AIConfigurator git dir (bare or checkout)")
    ap.add_argument("--aic-rev", default=AIC_REV, help="its commit to read (default: the one the committed profiles came from)")
    ap.add_argument("--vidur", help="Vidur git dir for a40 (a40 is skipped without it)")
    ap.add_argument("--vidur-rev", default=VIDUR_REV, help="its commit to read")
    ap.add_argument("--out", default=os.path.join(ROOT, "crates/ldqa-sim/data/kernels"))
    ap.add_argument("--specs", default=os.path.join(ROOT, "crates/ldqa-specs/data"))
    a = ap.parse_args()
    specs = {g["name"]: g for g in json.load(open(os.path.join(a.specs, "gpus.json")))["gpus"]}
    shapes, cfgs, used = catalog(os.path.join(a.specs, "models.json"))
    base = [f"catalog: {len(used)} dense models from ldqa-specs models.json with model_type in {sorted(DENSE_TYPES)} (MoE, gemma, deepseek, gpt-oss skipped), "
            "TP 1/2/4/8 where heads divide; KV heads replicated to 1 per GPU when kv_heads < tp"]
    aic = Aic(a.aic, a.aic_rev)
    os.makedirs(a.out, exist_ok=True)
    docs = {}
    for gpu in SYSTEMS:
        docs[gpu], checks = aic_profile(aic, gpu, specs[gpu], shapes, cfgs, base)
        table(docs[gpu], checks)
    if a.vidur and os.path.isdir(a.vidur):
        docs["a40"] = vidur_a40(a.vidur, a.vidur_rev, docs["a100-80gb"], specs["a40"])
        table(docs["a40"], [])
    else:
        print(f"no Vidur git dir at {a.vidur}: a40 skipped", file=sys.stderr)
    for gpu, doc in docs.items():
        check(doc)
        with open(os.path.join(a.out, f"{gpu}.json"), "w") as fh:
            fh.write(render(doc))
    print(f"wrote {', '.join(f'{g}.json' for g in docs)} to {os.path.relpath(a.out, ROOT)}")


if __name__ == "__main__":
    main()

//! Fits the H100 efficiencies to the seed's 16 numbers by coordinate descent within
//! physically plausible bounds, minimising the worst relative error (then the sum of
//! squares). Prints the best set; copy it into `data/efficiencies.json` by hand.
//!
//! `cargo run -p ldqa-sim --release --example fit_efficiencies`: the roofline's fractions
//! of peak and fixed costs (`gpus.h100-80gb`).
//! `… --example fit_efficiencies -- --kernels`: with the H100's measured kernel curves, only
//! the fixed costs the kernel tables leave out (`with_kernel_tables`).

#[path = "../tests/common/mod.rs"]
mod common;

use ldqa_sim::kernels::KernelProfile;
use ldqa_sim::{seed, Efficiencies, Scenario};

fn errors(eff: &Efficiencies) -> Vec<f64> {
    let mut out = Vec::new();
    for sc in seed::scenarios() {
        for (config, publ) in [
            (&sc.vllm, sc.published_vllm),
            (&sc.lmcache, sc.published_lmcache),
        ] {
            let scenario = Scenario {
                efficiencies: eff.clone(),
                ..config.clone()
            };
            let p = common::seed_predict(&scenario, &sc.workload).expect("valid scenario");
            for (a, b) in [
                (p.warmup_mean_ttft_s, publ.warmup_mean_ttft_s),
                (p.warmup_round_time_s, publ.warmup_round_time_s),
                (p.query_mean_ttft_s, publ.query_mean_ttft_s),
                (p.query_round_time_s, publ.query_round_time_s),
            ] {
                out.push((a - b) / b);
            }
        }
    }
    out
}

fn score(eff: &Efficiencies) -> (f64, f64) {
    let e = errors(eff);
    let worst = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let ss = e.iter().map(|x| x * x).sum::<f64>();
    (worst, ss)
}

fn main() {
    let kernels = std::env::args().any(|a| a == "--kernels");
    let mut eff = if kernels {
        let curves = KernelProfile::for_gpu("h100-80gb")
            .expect("embedded")
            .kernels;
        Efficiencies::with_kernels(curves).expect("embedded")
    } else {
        Efficiencies::for_gpu("h100-80gb").expect("embedded")
    };
    // The kernel curves replace the fractions of peak and the all-reduce.
    let fitted: &[usize] = if kernels {
        &[3, 4, 5, 7, 8, 9]
    } else {
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    };
    // Work in f64 copies of the integer fields.
    let mut x = [
        eff.compute_efficiency,
        eff.memory_efficiency,
        eff.interconnect_efficiency,
        eff.host_load_efficiency,
        eff.host_store_efficiency,
        eff.step_overhead_ns as f64,
        eff.allreduce_latency_ns as f64,
        eff.lmcache_chunk_overhead_ns as f64,
        eff.frontend_request_ns as f64,
        eff.frontend_ns_per_prompt_token as f64,
    ];
    let bounds: [(&str, f64, f64); 10] = [
        ("compute_efficiency", 0.40, 0.70),
        ("memory_efficiency", 0.70, 0.85),
        ("interconnect_efficiency", 0.60, 0.85),
        ("host_load_efficiency", 0.75, 0.85),
        ("host_store_efficiency", 0.75, 0.85),
        ("step_overhead_ns", 500_000.0, 5_000_000.0),
        ("allreduce_latency_ns", 5_000.0, 30_000.0),
        ("lmcache_chunk_overhead_ns", 0.0, 1_500_000.0),
        ("frontend_request_ns", 1_000_000.0, 20_000_000.0),
        ("frontend_ns_per_prompt_token", 0.0, 2_000.0),
    ];
    let apply = |x: &[f64; 10], e: &mut Efficiencies| {
        e.compute_efficiency = x[0];
        e.memory_efficiency = x[1];
        e.interconnect_efficiency = x[2];
        e.host_load_efficiency = x[3];
        e.host_store_efficiency = x[4];
        e.step_overhead_ns = x[5].round() as u64;
        e.allreduce_latency_ns = x[6].round() as u64;
        e.lmcache_chunk_overhead_ns = x[7].round() as u64;
        e.frontend_request_ns = x[8].round() as u64;
        e.frontend_ns_per_prompt_token = x[9].round() as u64;
    };
    apply(&x, &mut eff);
    let mut best = score(&eff);
    println!("start: worst {:.2}% ss {:.4}", best.0 * 100.0, best.1);
    let mut step = 0.25;
    while step > 0.004 {
        let mut improved = false;
        for &i in fitted {
            let (name, lo, hi) = bounds[i];
            for dir in [1.0, -1.0] {
                let mut y = x;
                y[i] = (x[i] + dir * step * (hi - lo)).clamp(lo, hi);
                if y[i] == x[i] {
                    continue;
                }
                apply(&y, &mut eff);
                let s = score(&eff);
                if s.0 < best.0 - 1e-6 || (s.0 <= best.0 + 1e-6 && s.1 < best.1 - 1e-9) {
                    best = s;
                    x = y;
                    improved = true;
                    println!(
                        "  {name} = {:.4}: worst {:.2}% ss {:.4}",
                        y[i],
                        s.0 * 100.0,
                        s.1
                    );
                }
            }
        }
        if !improved {
            step /= 2.0;
        }
    }
    apply(&x, &mut eff);
    println!("best: {eff:#?}");
    for (i, e) in errors(&eff).iter().enumerate() {
        println!("  #{i:2} {:+.1}%", e * 100.0);
    }
}

//! Predicts the seed's 16 numbers and prints them next to the published ones.
//!
//! `cargo run -p ldqa-sim --release --example seed_predict`

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use ldqa_sim::seed;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut worst: f64 = 0.0;
    for sc in seed::scenarios() {
        for (engine, config, published) in [
            ("vllm", &sc.vllm, sc.published_vllm),
            ("lmcache", &sc.lmcache, sc.published_lmcache),
        ] {
            let t0 = Instant::now();
            let p = common::seed_predict(config, &sc.workload)?;
            let took = t0.elapsed();
            println!(
                "{} {engine} (simulated in {:.1} ms)",
                sc.name,
                took.as_secs_f64() * 1e3
            );
            for (what, pred, publ) in [
                (
                    "warmup mean TTFT",
                    p.warmup_mean_ttft_s,
                    published.warmup_mean_ttft_s,
                ),
                (
                    "warmup round time",
                    p.warmup_round_time_s,
                    published.warmup_round_time_s,
                ),
                (
                    "query mean TTFT",
                    p.query_mean_ttft_s,
                    published.query_mean_ttft_s,
                ),
                (
                    "query round time",
                    p.query_round_time_s,
                    published.query_round_time_s,
                ),
            ] {
                let err = (pred - publ) / publ * 100.0;
                worst = worst.max(err.abs());
                println!(
                    "  {what:<18} predicted {pred:>8.3}s  published {publ:>8.3}s  {err:>+6.1}%"
                );
            }
        }
    }
    println!("worst error: {worst:.1}%");
    Ok(())
}

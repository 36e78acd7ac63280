//! Speed benchmark: the seed's 8B scenario, and one million requests of 1,000 prompt
//! tokens (distinct documents, 100 output tokens, 64 in flight) on one core.
//!
//! `cargo run -p ldqa-sim --release --example bench_million [requests]`

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use ldqa_sim::round::{run_round, Frontend, RoundRequest};
use ldqa_sim::{seed, Engine, PromptKey, SimRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sc = seed::llama8b_h100();
    let eff = sc.lmcache.efficiencies.clone();

    for (name, config) in [("vllm", &sc.vllm), ("lmcache", &sc.lmcache)] {
        let t0 = Instant::now();
        let rounds = common::seed_rounds(config, &sc.workload)?;
        println!(
            "seed 8B {name}: 3 rounds, {} requests, simulated in {:.2} ms",
            rounds.iter().map(|r| r.requests.len()).sum::<usize>(),
            t0.elapsed().as_secs_f64() * 1e3
        );
    }

    let requests: Vec<RoundRequest> = (0..n)
        .map(|i| RoundRequest {
            prompt_id: i,
            document_id: i,
            is_miss: false,
            request: SimRequest {
                key: PromptKey::for_document(i as u64, None, 29),
                prompt_tokens: 1_000,
                max_output_tokens: 100,
            },
            session: None,
        })
        .collect();
    let mut engine = Engine::new(sc.lmcache.config.clone(), &eff)?;
    let fe = Frontend::from_efficiencies(&eff);
    let t0 = Instant::now();
    let out = run_round(&mut engine, &requests, 64, &fe)?;
    let wall = t0.elapsed();
    let stats = engine.stats();
    println!(
        "{n} requests x 1,000 prompt tokens, 100 output, 64 in flight (vLLM+LMCache): \
         wall {:.2} s, {} engine steps, virtual round time {:.1} s, mean TTFT {:.1} ms",
        wall.as_secs_f64(),
        stats.steps,
        out.duration_ns() as f64 / 1e9,
        out.mean_ttft_ns() as f64 / 1e6
    );
    Ok(())
}

//! The seed's workload planned by `ldqa-workload` and run by `ldqa_sim::protocol`, exactly
//! as `ldqa predict` plans and runs it. Shared by the tests and (through `#[path]`) the
//! examples of this crate.

#![allow(dead_code)] // each test or example uses part of it

use ldqa_model::{Plan, PromptTemplate, RoundRecord};
use ldqa_sim::protocol::{run_protocol, SimClient};
use ldqa_sim::seed::{Published, SeedWorkload};
use ldqa_sim::{Scenario, SimError};
use ldqa_workload::{RepeatMode, Workload, WorkloadConfig};

/// The seed's plan: documents in tile order, no misses, nothing between the rounds.
pub fn seed_plan(w: &SeedWorkload) -> Plan {
    let config = WorkloadConfig {
        num_documents: w.num_documents,
        document_length: w.document_length,
        repeat_count: w.repeat_count,
        repeat_mode: RepeatMode::Tile,
        ..WorkloadConfig::default()
    };
    Workload::build(&config)
        .expect("invariant: the seed workload is valid")
        .plan(w.max_inflight_requests, 0)
}

/// The seed's chat client.
pub fn seed_client(w: &SeedWorkload) -> SimClient {
    SimClient {
        output_len: w.output_len,
        template: PromptTemplate::LLAMA3_CHAT,
    }
}

/// Every round of the seed workload on `scenario`.
pub fn seed_rounds(scenario: &Scenario, w: &SeedWorkload) -> Result<Vec<RoundRecord>, SimError> {
    run_protocol(scenario, &seed_plan(w), &seed_client(w))
}

/// The four published numbers, as the simulator predicts them.
pub fn seed_predict(scenario: &Scenario, w: &SeedWorkload) -> Result<Published, SimError> {
    Ok(Published::of_rounds(&seed_rounds(scenario, w)?))
}

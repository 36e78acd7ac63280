//! Shared test setup: a small Llama-3.1-8B on H100 engine.
#![allow(dead_code)]

use ldqa_serve::ServerConfig;
use ldqa_sim::{seed, Efficiencies, EngineConfig};

pub const MODEL: &str = "sim-llama-8b";

/// The seed's Llama-3.1-8B on one H100 (`vllm` or `lmcache`).
pub fn engine(lmcache: bool) -> EngineConfig {
    let s = seed::llama8b_h100();
    if lmcache {
        s.lmcache
    } else {
        s.vllm
    }
}

pub fn efficiencies() -> Efficiencies {
    Efficiencies::for_gpu("h100-80gb").unwrap()
}

pub fn config(time_scale: f64) -> ServerConfig {
    let mut c = ServerConfig::new(engine(false), efficiencies(), MODEL.into());
    c.time_scale = time_scale;
    c
}

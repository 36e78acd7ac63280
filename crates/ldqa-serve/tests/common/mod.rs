//! Shared test setup: a small Llama-3.1-8B on H100 engine.
#![allow(dead_code)]

use ldqa_serve::ServerConfig;
use ldqa_sim::{seed, Efficiencies, EngineConfig, Scenario};

pub const MODEL: &str = "sim-llama-8b";

/// The seed's Llama-3.1-8B on one H100 (`vllm` or `lmcache`), with its efficiencies.
pub fn scenario(lmcache: bool) -> Scenario {
    let s = seed::llama8b_h100();
    if lmcache {
        s.lmcache
    } else {
        s.vllm
    }
}

/// The engine of [`scenario`].
pub fn engine(lmcache: bool) -> EngineConfig {
    scenario(lmcache).config
}

pub fn efficiencies() -> Efficiencies {
    Efficiencies::for_gpu("h100-80gb").unwrap()
}

pub fn config(time_scale: f64) -> ServerConfig {
    let mut c = ServerConfig::new(engine(false), efficiencies(), MODEL.into());
    c.time_scale = time_scale;
    c
}

/// Serves `config` on 127.0.0.1:0; returns the base URL (`http://127.0.0.1:PORT`) and a
/// sender that stops the server.
pub async fn start(config: ServerConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ldqa_serve::serve(listener, config, async move {
        let _ = rx.await;
    }));
    (format!("http://127.0.0.1:{port}"), tx)
}

/// A loadgen client for `base` (chat API).
pub fn client(base: &str, output_len: u32) -> ldqa_loadgen::Client {
    let endpoint = ldqa_loadgen::Endpoint::new(&format!("{base}/v1"), None).unwrap();
    let config =
        ldqa_loadgen::ClientConfig::new(endpoint, MODEL.into(), ldqa_model::Api::Chat, output_len);
    ldqa_loadgen::Client::new(config).unwrap()
}

/// `/metrics`, parsed.
pub async fn metrics(base: &str) -> ldqa_loadgen::prometheus::Snapshot {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ldqa_loadgen::prometheus::parse(&text)
}

//! `ldqa serve --kv-events-config JSON`: vLLM's flag of the same name, read the same way
//! (`vllm/config/kv_events.py`), for the KV cache events KV-aware routers subscribe to.

use anyhow::{bail, Context};
use ldqa_serve::kv_events::KvEventsConfig;
use serde::Deserialize;

/// vLLM's `KVEventsConfig`: the fields ldqa uses, and those it accepts and ignores.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VllmKvEventsConfig {
    #[serde(default)]
    enable_kv_cache_events: bool,
    #[serde(default)]
    publisher: Option<String>,
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default)]
    topic: String,
    // Accepted as vLLM accepts them; ldqa's publisher has no replay socket or queue bounds.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for vLLM command lines; not used")]
    replay_endpoint: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for vLLM command lines; not used")]
    buffer_steps: Option<u64>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for vLLM command lines; not used")]
    hwm: Option<u64>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for vLLM command lines; not used")]
    max_queue_size: Option<u64>,
}

fn default_endpoint() -> String {
    "tcp://*:5557".into()
}

/// Each instance's publisher settings (none when events are not enabled): instance k
/// binds the endpoint's port + k, as vLLM's data-parallel ranks do.
pub fn parse(json: Option<&str>, instances: u16) -> anyhow::Result<Vec<KvEventsConfig>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let c: VllmKvEventsConfig =
        serde_json::from_str(json).context("--kv-events-config is not vLLM's KVEventsConfig")?;
    if !c.enable_kv_cache_events {
        return Ok(Vec::new());
    }
    match c.publisher.as_deref() {
        None | Some("zmq") => {}
        Some(other) => {
            bail!("--kv-events-config: publisher {other:?}: ldqa publishes with zmq only")
        }
    }
    let (head, port) = c
        .endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .with_context(|| {
            format!(
                "--kv-events-config: endpoint {:?} is not tcp://HOST:PORT",
                c.endpoint
            )
        })?;
    (0..instances)
        .map(|k| {
            let at = port.checked_add(k).with_context(|| {
                format!(
                    "--kv-events-config: port {port} with --instances {instances} runs past 65535"
                )
            })?;
            Ok(KvEventsConfig {
                endpoint: format!("tcp://{head}:{at}"),
                topic: c.topic.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn vllm_settings_give_one_endpoint_per_instance() {
        let json = r#"{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557", "topic": ""}"#;
        let c = parse(Some(json), 2).unwrap();
        let endpoints: Vec<&str> = c.iter().map(|c| c.endpoint.as_str()).collect();
        assert_eq!(endpoints, ["tcp://*:5557", "tcp://*:5558"]);
        assert!(parse(Some(r#"{"enable_kv_cache_events": false}"#), 1)
            .unwrap()
            .is_empty());
        assert!(parse(None, 1).unwrap().is_empty());
        for (bad, says) in [
            (
                r#"{"enable_kv_cache_events": true, "publisher": "nats"}"#,
                "zmq only",
            ),
            (
                r#"{"enable_kv_cache_events": true, "endpoint": "ipc:///x"}"#,
                "tcp://HOST:PORT",
            ),
            (
                r#"{"enable_kv_cache_events": true, "endpont": "tcp://*:1"}"#,
                "KVEventsConfig",
            ),
        ] {
            let e = format!("{:#}", parse(Some(bad), 1).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

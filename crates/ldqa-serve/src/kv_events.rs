//! vLLM's KV cache events, published as vLLM publishes them with
//! `--kv-events-config '{"enable_kv_cache_events": true, "publisher": "zmq", …}'`, so that
//! KV-aware routers (`vllm-router --policy kv_aware --kv-event-source`) route on the
//! simulated caches as they do on real engines.
//!
//! The wire format (vLLM's `vllm/distributed/kv_events.py`, as `vllm-router` 0.1.17's
//! `src/kv_index/decode.rs` reads it): a ZeroMQ PUB socket; each message three frames,
//! the topic, a sequence number (8 bytes, big-endian, from 0) and a MessagePack batch
//! `[ts, [event, …], data_parallel_rank]`, each event a map tagged by `"type"`:
//! `BlockStored` (`block_hashes`, `parent_block_hash`, `token_ids`, `block_size`,
//! `lora_id`, `medium`, `lora_name`), `BlockRemoved` (`block_hashes`, `medium`) or
//! `AllBlocksCleared`. Hashes go out as unsigned 64-bit integers (vLLM's default,
//! `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`). A router keys blocks by their token ids, so
//! the ids must be the ones the engine cached: the prompt's, then the output's.
//!
//! The socket lives on its own thread with a one-worker runtime, so that subscribers are
//! accepted while the engine is idle; the engine's thread hands it encoded batches.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use zeromq::{Socket, SocketSend, ZmqMessage};

use crate::ServeError;

/// Where and how to publish (vLLM's `KVEventsConfig`, the fields ldqa uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEventsConfig {
    /// `tcp://HOST:PORT` to bind (`*` for every interface, as vLLM takes it).
    pub endpoint: String,
    /// The first frame of every message (vLLM's default: empty).
    pub topic: String,
}

/// One event as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireEvent {
    /// Consecutive full blocks of one request, cached.
    Stored {
        /// Their names, in order.
        hashes: Vec<u64>,
        /// The name of the block before the first (none: the prompt's first).
        parent: Option<u64>,
        /// Their tokens, `block_size` per block.
        token_ids: Vec<u32>,
        /// Tokens per block.
        block_size: u32,
    },
    /// Blocks evicted.
    Removed {
        /// Their names.
        hashes: Vec<u64>,
    },
    /// Every block dropped.
    Cleared,
}

/// A running publisher; cloning it shares the socket. Dropping the last clone ends its
/// thread.
#[derive(Debug, Clone)]
pub struct KvEventPublisher {
    batches: mpsc::UnboundedSender<Vec<WireEvent>>,
    endpoint: Arc<str>,
}

impl KvEventPublisher {
    /// Binds `config.endpoint` (an error if it cannot be bound) and starts publishing.
    pub fn start(config: &KvEventsConfig) -> Result<Self, ServeError> {
        let endpoint = config.endpoint.replacen("tcp://*:", "tcp://0.0.0.0:", 1);
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (batches, rx) = mpsc::unbounded_channel();
        let topic = Bytes::from(config.topic.clone().into_bytes());
        let target = endpoint.clone();
        std::thread::Builder::new()
            .name("ldqa-kv-events".into())
            .spawn(move || publish(&target, topic, rx, &bound_tx))?;
        let bound = bound_rx
            .recv()
            .map_err(|_| ServeError::KvEvents(format!("{endpoint}: the publisher stopped")))?;
        let endpoint = bound.map_err(|e| ServeError::KvEvents(format!("{endpoint}: {e}")))?;
        Ok(KvEventPublisher {
            batches,
            endpoint: endpoint.into(),
        })
    }

    /// The endpoint bound (the port resolved).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Publishes `events` as one batch (nothing when empty).
    pub fn send(&self, events: Vec<WireEvent>) {
        if !events.is_empty() {
            // Gone only when the thread ended, which it does when this is dropped.
            let _ = self.batches.send(events);
        }
    }
}

/// The publisher thread: binds, reports it, then sends each batch as it comes.
fn publish(
    endpoint: &str,
    topic: Bytes,
    mut batches: mpsc::UnboundedReceiver<Vec<WireEvent>>,
    bound: &std::sync::mpsc::Sender<Result<String, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = bound.send(Err(e.to_string()));
            return;
        }
    };
    runtime.block_on(async move {
        let mut socket = zeromq::PubSocket::new();
        match socket.bind(endpoint).await {
            Ok(at) => {
                let _ = bound.send(Ok(at.to_string()));
            }
            Err(e) => {
                let _ = bound.send(Err(e.to_string()));
                return;
            }
        }
        let mut seq: i64 = 0;
        while let Some(events) = batches.recv().await {
            let mut message = ZmqMessage::from(topic.clone());
            message.push_back(Bytes::copy_from_slice(&seq.to_be_bytes()));
            message.push_back(Bytes::from(encode_batch(unix_now_s(), &events)));
            // A PUB socket drops messages for subscribers that cannot keep up; an error
            // here is one of those, and the next batch is sent all the same.
            let _ = socket.send(message).await;
            seq += 1;
        }
    });
}

fn unix_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `[ts, [event, …], 0]` in MessagePack, each event a map tagged by `"type"`.
pub fn encode_batch(ts: f64, events: &[WireEvent]) -> Vec<u8> {
    use rmp::encode as mp;
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = mp::write_array_len(&mut out, 3);
    let _ = mp::write_f64(&mut out, ts);
    let _ = mp::write_array_len(&mut out, events.len() as u32);
    for ev in events {
        encode_event(&mut out, ev);
    }
    let _ = mp::write_uint(&mut out, 0);
    out
}

fn encode_event(out: &mut Vec<u8>, ev: &WireEvent) {
    use rmp::encode as mp;
    let key = |out: &mut Vec<u8>, k: &str| {
        let _ = mp::write_str(out, k);
    };
    let hashes = |out: &mut Vec<u8>, hashes: &[u64]| {
        let _ = mp::write_array_len(out, hashes.len() as u32);
        for &h in hashes {
            let _ = mp::write_uint(out, h);
        }
    };
    match ev {
        WireEvent::Stored {
            hashes: names,
            parent,
            token_ids,
            block_size,
        } => {
            let _ = mp::write_map_len(out, 8);
            key(out, "type");
            key(out, "BlockStored");
            key(out, "block_hashes");
            hashes(out, names);
            key(out, "parent_block_hash");
            if let Some(p) = parent {
                let _ = mp::write_uint(out, *p);
            } else {
                let _ = mp::write_nil(out);
            }
            key(out, "token_ids");
            let _ = mp::write_array_len(out, token_ids.len() as u32);
            for &t in token_ids {
                let _ = mp::write_uint(out, u64::from(t));
            }
            key(out, "block_size");
            let _ = mp::write_uint(out, u64::from(*block_size));
            key(out, "lora_id");
            let _ = mp::write_nil(out);
            key(out, "medium");
            key(out, "GPU");
            key(out, "lora_name");
            let _ = mp::write_nil(out);
        }
        WireEvent::Removed { hashes: names } => {
            let _ = mp::write_map_len(out, 3);
            key(out, "type");
            key(out, "BlockRemoved");
            key(out, "block_hashes");
            hashes(out, names);
            key(out, "medium");
            key(out, "GPU");
        }
        WireEvent::Cleared => {
            let _ = mp::write_map_len(out, 1);
            key(out, "type");
            key(out, "AllBlocksCleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a batch, checked by hand against the MessagePack spec.
    #[test]
    fn a_batch_is_an_array_of_tagged_maps() {
        let bytes = encode_batch(
            0.5,
            &[
                WireEvent::Stored {
                    hashes: vec![7],
                    parent: None,
                    token_ids: vec![1, 2],
                    block_size: 2,
                },
                WireEvent::Removed { hashes: vec![7] },
                WireEvent::Cleared,
            ],
        );
        let mut want = vec![0x93, 0xcb];
        want.extend(0.5f64.to_be_bytes());
        want.push(0x93);
        let s = |t: &str| {
            let mut v = vec![0xa0 | t.len() as u8];
            v.extend(t.as_bytes());
            v
        };
        want.push(0x88);
        for part in [
            s("type"),
            s("BlockStored"),
            s("block_hashes"),
            vec![0x91, 7],
            s("parent_block_hash"),
            vec![0xc0],
            s("token_ids"),
            vec![0x92, 1, 2],
            s("block_size"),
            vec![2],
            s("lora_id"),
            vec![0xc0],
            s("medium"),
            s("GPU"),
            s("lora_name"),
            vec![0xc0],
        ] {
            want.extend(part);
        }
        want.push(0x83);
        for part in [
            s("type"),
            s("BlockRemoved"),
            s("block_hashes"),
            vec![0x91, 7],
            s("medium"),
            s("GPU"),
        ] {
            want.extend(part);
        }
        want.push(0x81);
        want.extend(s("type"));
        want.extend(s("AllBlocksCleared"));
        want.push(0);
        assert_eq!(bytes, want);
    }
}

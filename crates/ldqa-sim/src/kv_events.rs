//! Changes to an engine's GPU prefix cache as vLLM reports them to KV-aware routers
//! (`--kv-events-config`: `BlockStored`, `BlockRemoved`, `AllBlocksCleared`), recorded only
//! when asked for ([`crate::Engine::record_kv_events`]).

use crate::ReqId;

/// One change to the GPU prefix cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvEvent {
    /// Block `index` of request `req` (its tokens `index × block_size ..`, the output's
    /// included) now holds the full block named `hash`, which follows the block `parent`
    /// (none: the prompt's first).
    Stored {
        /// The request whose block it is.
        req: ReqId,
        /// Its position in the request.
        index: u64,
        /// The block's name (chained from the prompt's start).
        hash: u64,
        /// The name of the block before it.
        parent: Option<u64>,
    },
    /// The block named `hash` was evicted: its memory went to another block.
    Removed {
        /// The evicted block's name.
        hash: u64,
    },
    /// Every cached block was dropped (`/reset_prefix_cache`).
    Cleared,
}

#[cfg(test)]
mod tests {
    use super::KvEvent;
    use crate::{seed, Efficiencies, Engine, EngineConfig, PromptKey, SimRequest};

    fn run(e: &mut Engine, tokens: std::ops::Range<u64>) -> Vec<KvEvent> {
        let n = tokens.end - tokens.start;
        let req = SimRequest {
            key: PromptKey::for_tokens(tokens),
            prompt_tokens: n,
            max_output_tokens: 2,
        };
        let at = e.now();
        e.submit(at, req).unwrap();
        e.run_to_idle(&mut Vec::new()).unwrap();
        let mut out = Vec::new();
        e.take_kv_events(&mut out);
        out
    }

    /// A prompt's full blocks are announced once each, chained to the block before; a
    /// block evicted for another prompt is announced removed; a reset clears all.
    #[test]
    fn stores_removals_and_clears_are_announced_in_order() {
        let mut cfg: EngineConfig = seed::llama8b_h100().vllm.config;
        cfg.block_size_tokens = 16;
        cfg.gpu_kv_tokens = 8 * 16;
        let mut e = Engine::new(cfg, &Efficiencies::for_gpu("h100-80gb").unwrap()).unwrap();
        e.record_kv_events(true);
        let first = run(&mut e, 0..40);
        let [KvEvent::Stored {
            index: 0,
            hash: h0,
            parent: None,
            ..
        }, KvEvent::Stored {
            index: 1,
            hash: h1,
            parent: Some(p1),
            ..
        }] = first[..]
        else {
            panic!("{first:?}");
        };
        assert_eq!(p1, h0);
        assert_eq!(run(&mut e, 0..40), [], "the same prompt stores nothing new");
        let other = run(&mut e, 1000..1100);
        let removed: Vec<u64> = other
            .iter()
            .filter_map(|ev| match ev {
                KvEvent::Removed { hash } => Some(*hash),
                _ => None,
            })
            .collect();
        // A request's blocks are freed tail first (vLLM's `free_blocks(reversed(...))`), so
        // its last block is the first evicted.
        assert_eq!(removed, [h1, h0], "{other:?}");
        let stored = other
            .iter()
            .filter(|ev| matches!(ev, KvEvent::Stored { .. }))
            .count();
        assert_eq!(stored, 6, "{other:?}");
        assert!(e.reset_prefix_cache());
        let mut out = Vec::new();
        e.take_kv_events(&mut out);
        assert_eq!(out, [KvEvent::Cleared]);
    }
}

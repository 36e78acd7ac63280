//! Invariants under random workloads: blocks never leak or double-free, caches never
//! exceed capacity, every request ends exactly once after its tokens in order, time
//! never goes backwards, and the same input gives byte-identical output.

mod common;

use ldqa_sim::{seed, Efficiencies, Engine, EngineConfig, Event, EventKind, Mode, PromptKey};
use ldqa_sim::{SimRequest, SimTime};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    kv_tokens: u64,
    mnbt: u32,
    max_seqs: u32,
    lmcache_chunks: Option<u64>,
    // (arrival gap ns, document, prompt tokens, output tokens, abort after n advances)
    requests: Vec<(u64, u8, u64, u32, Option<u8>)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        64u64..3000,
        1u32..600,
        1u32..6,
        prop::option::of(0u64..40),
        prop::collection::vec(
            (
                0u64..50_000_000,
                0u8..6,
                0u64..1200,
                0u32..40,
                prop::option::weighted(0.1, 0u8..20),
            ),
            1..40,
        ),
    )
        .prop_map(
            |(kv_tokens, mnbt, max_seqs, lmcache_chunks, requests)| Case {
                kv_tokens,
                mnbt,
                max_seqs,
                lmcache_chunks,
                requests,
            },
        )
}

fn config(c: &Case) -> EngineConfig {
    let mut cfg = seed::llama8b_h100().vllm.config;
    cfg.gpu_kv_tokens = c.kv_tokens;
    cfg.max_num_batched_tokens = c.mnbt;
    cfg.max_num_seqs = c.max_seqs;
    cfg.lmcache_chunk_tokens = 32;
    if let Some(chunks) = c.lmcache_chunks {
        let bytes = chunks * 32 * cfg.kv_bytes_per_token_per_rank();
        cfg.mode = Mode::Lmcache {
            cpu_bytes_per_rank: bytes,
        };
    }
    cfg
}

/// Runs the case through the incremental API, checking invariants after every call.
/// `split`: release each time's due events first (`release_due`), as `ldqa serve`'s
/// driver does, then decide the next step (`advance_to`).
fn run_with(c: &Case, split: bool) -> Result<(Vec<Event>, Engine), TestCaseError> {
    let eff = Efficiencies::for_gpu("h100-80gb").unwrap();
    let mut engine = Engine::new(config(c), &eff).unwrap();
    let mut events = Vec::new();
    let mut ids = Vec::new();
    let mut at = SimTime::ZERO;
    let mut aborts = Vec::new();
    let advance = |engine: &mut Engine, t: SimTime, events: &mut Vec<Event>| {
        if split {
            engine.release_due(t, events).unwrap();
            engine.check_invariants().map_err(TestCaseError::fail)?;
        }
        engine.advance_to(t, events).unwrap();
        engine.check_invariants().map_err(TestCaseError::fail)
    };
    for (k, &(gap, doc, prompt, out, abort_after)) in c.requests.iter().enumerate() {
        at = at.plus_ns(gap);
        advance(&mut engine, at, &mut events)?;
        engine.check_invariants().map_err(TestCaseError::fail)?;
        let key = PromptKey::for_document(u64::from(doc), None, 20);
        let id = engine
            .submit(
                at,
                SimRequest {
                    key,
                    prompt_tokens: prompt,
                    max_output_tokens: out,
                },
            )
            .unwrap();
        ids.push(id);
        if let Some(n) = abort_after {
            aborts.push((k + usize::from(n), id));
        }
        for &(when, id) in &aborts {
            if when == k {
                engine.abort(id);
                engine.check_invariants().map_err(TestCaseError::fail)?;
            }
        }
    }
    let mut guard = 0u64;
    while let Some(t) = engine.next_event_time() {
        advance(&mut engine, t, &mut events)?;
        guard += 1;
        prop_assert!(guard < 1_000_000, "engine does not terminate");
    }
    // Every request: tokens 0..n in order, then exactly one terminal event.
    for id in &ids {
        let mine: Vec<&Event> = events.iter().filter(|e| e.req == *id).collect();
        let terminal: Vec<&&Event> = mine.iter().filter(|e| e.kind.is_terminal()).collect();
        prop_assert_eq!(
            terminal.len(),
            1,
            "request {:?} ended {} times",
            id,
            terminal.len()
        );
        prop_assert!(
            mine.last().unwrap().kind.is_terminal(),
            "terminal event is not last"
        );
        let mut expect = 0u32;
        for e in &mine {
            if let EventKind::Token { index } = e.kind {
                prop_assert_eq!(index, expect);
                expect += 1;
            }
            if let EventKind::Finished { output_tokens, .. } = e.kind {
                prop_assert_eq!(output_tokens, expect);
            }
        }
    }
    // Time never goes backwards in the event stream.
    for w in events.windows(2) {
        prop_assert!(w[0].at <= w[1].at, "{:?} then {:?}", w[0], w[1]);
    }
    // Nothing leaks: every block is back in the free queue.
    prop_assert_eq!(engine.gpu_cache_usage(), 0.0);
    prop_assert_eq!(engine.num_running() + engine.num_waiting(), 0);
    prop_assert!(engine.cpu_chunks_used() <= engine.cpu_capacity_chunks() as usize);
    Ok((events, engine))
}

fn run(c: &Case) -> Result<(Vec<Event>, Engine), TestCaseError> {
    run_with(c, false)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn releasing_due_events_first_changes_nothing(c in case()) {
        let (whole, _) = run(&c)?;
        let (split, _) = run_with(&c, true)?;
        prop_assert_eq!(serde_json::to_vec(&whole).unwrap(), serde_json::to_vec(&split).unwrap());
    }

    #[test]
    fn invariants_hold(c in case()) {
        let (events, engine) = run(&c)?;
        let finished = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Finished { .. }))
            .count() as u64;
        prop_assert_eq!(finished, engine.stats().finished);
    }

    #[test]
    fn same_input_same_bytes(c in case()) {
        let (a, _) = run(&c)?;
        let (b, _) = run(&c)?;
        prop_assert_eq!(serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
    }
}

#[test]
fn seed_protocol_is_byte_identical_across_runs() {
    let sc = seed::llama8b_h100();
    let a = common::seed_rounds(&sc.lmcache, &sc.workload).unwrap();
    let b = common::seed_rounds(&sc.lmcache, &sc.workload).unwrap();
    assert_eq!(
        serde_json::to_vec(&a).unwrap(),
        serde_json::to_vec(&b).unwrap()
    );
    // LMCache serves the query round from the CPU tier.
    let cpu: u64 = a[2]
        .requests
        .iter()
        .map(|r| r.prefix.unwrap().cpu_hit_tokens)
        .sum();
    assert!(cpu > 50 * 9_000, "{cpu}");
}

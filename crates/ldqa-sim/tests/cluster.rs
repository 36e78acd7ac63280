//! The simulated cluster: N engines behind a router.

use ldqa_sim::cluster::{CacheAwareParams, Cluster, ClusterSpec, RoutingPolicy};
use ldqa_sim::round::{drive_stream, Frontend, RoundOutcome, SingleEngine};
use ldqa_sim::scenario::{self, EngineMode};
use ldqa_sim::trace::{simulate_trace_on_cluster, timed_requests, TraceOptions};
use ldqa_sim::{Engine, Scenario};
use ldqa_trace::{Trace, TraceFormat, TraceRequest};

fn seed(mode: EngineMode) -> Scenario {
    let d = ldqa_recommend::Deployment::new(
        ldqa_specs::catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap(),
        ldqa_specs::catalog::gpu("h100-80gb").unwrap(),
        Some(1),
        ldqa_recommend::VllmKnobs::default(),
    )
    .unwrap();
    scenario::build(&d, mode).unwrap()
}

/// `docs` documents of `blocks` 512-token trace blocks each, asked `rounds` times in turn
/// (0, 1, …, docs−1, 0, 1, …), a request every `gap_ms`.
fn repeated_documents(docs: u64, blocks: u64, rounds: u64, gap_ms: f64) -> Trace {
    let requests = (0..docs * rounds)
        .map(|i| {
            let doc = i % docs;
            TraceRequest {
                arrival_ms: i as f64 * gap_ms,
                input_length: blocks * 512,
                output_length: 8,
                hash_ids: (0..blocks).map(|b| doc * 1000 + b).collect(),
                chat: None,
            }
        })
        .collect();
    Trace {
        format: TraceFormat::Mooncake,
        requests,
    }
}

fn run(trace: &Trace, instances: usize, policy: RoutingPolicy) -> RoundOutcome {
    let spec = ClusterSpec {
        instances,
        policy,
        remote: None,
        text_prompts: false,
    };
    simulate_trace_on_cluster(
        &seed(EngineMode::Vllm),
        trace,
        &TraceOptions::default(),
        &spec,
    )
    .unwrap()
}

fn cached(out: &RoundOutcome) -> u64 {
    out.records
        .iter()
        .map(|r| r.usage.unwrap().cached_tokens.unwrap())
        .sum()
}

/// A cluster of one behind any router is the engine alone, record for record: the
/// router, the id mapping and the per-instance front end change nothing.
#[test]
fn one_instance_is_the_engine_alone() {
    let trace = repeated_documents(3, 4, 3, 50.0);
    let s = seed(EngineMode::Lmcache {
        cpu_gib_per_rank: None,
    });
    let frontend = Frontend::from_efficiencies(&s.efficiencies);
    let requests = || timed_requests(trace.format, &trace.requests, &TraceOptions::default());
    let mut engine = Engine::new(s.config.clone(), &s.efficiencies).unwrap();
    let mut alone = Vec::new();
    let alone_span = drive_stream(
        &mut SingleEngine::new(&mut engine, frontend),
        requests(),
        usize::MAX,
        &mut |i, k, r| alone.push((i, k, r)),
    )
    .unwrap();
    assert_eq!(alone.len(), trace.requests.len());
    for policy in [
        RoutingPolicy::RoundRobin,
        RoutingPolicy::CacheAware(CacheAwareParams::default()),
        RoutingPolicy::KvAware,
    ] {
        let idle = Engine::new(s.config.clone(), &s.efficiencies).unwrap();
        let spec = ClusterSpec {
            instances: 1,
            policy,
            remote: None,
            text_prompts: false,
        };
        let mut cluster = Cluster::new(&idle, &spec, &frontend).unwrap();
        let mut out = Vec::new();
        let span = drive_stream(&mut cluster, requests(), usize::MAX, &mut |i, k, r| {
            out.push((i, k, r));
        })
        .unwrap();
        assert_eq!(out, alone, "{policy:?}");
        assert_eq!(span, alone_span);
    }
}

/// The client reads a request only when it falls due and hands each record over when its
/// request ends: a long trace is never held whole.
#[test]
fn requests_are_read_when_due_and_records_leave_when_they_end() {
    let trace = repeated_documents(50, 1, 1, 1000.0);
    let read = std::cell::Cell::new(0usize);
    let source = timed_requests(trace.format, &trace.requests, &TraceOptions::default())
        .inspect(|_| read.set(read.get() + 1));
    let idle = seed(EngineMode::Vllm);
    let mut engine = Engine::new(idle.config.clone(), &idle.efficiencies).unwrap();
    let frontend = Frontend::from_efficiencies(&idle.efficiencies);
    let mut ended = Vec::new();
    drive_stream(
        &mut SingleEngine::new(&mut engine, frontend),
        source,
        usize::MAX,
        &mut |i, _, _| ended.push((i, read.get())),
    )
    .unwrap();
    // A 512-token prompt ends well within the second before the next is due; the client
    // has looked at the one after it (to know when it falls due), no further.
    let expected: Vec<(usize, usize)> = (0..50).map(|i| (i, (i + 2).min(50))).collect();
    assert_eq!(ended, expected);
}

/// Round robin deals requests in turn; each instance's records are its own requests.
#[test]
fn round_robin_deals_in_turn() {
    let trace = repeated_documents(4, 2, 2, 10.0);
    let out = run(&trace, 3, RoutingPolicy::RoundRobin);
    assert_eq!(out.instances, [0, 1, 2, 0, 1, 2, 0, 1]);
}

/// Three documents asked four times in turn on two instances: round robin sends each
/// document to both instances in turn (each computes it once: half of the requests hit),
/// while both prefix routers keep a document on one instance (every repeat hits), as the
/// engine alone would.
#[test]
fn prefix_routers_keep_a_document_on_one_instance() {
    let trace = repeated_documents(3, 8, 4, 2000.0);
    let prompt = 8 * 512u64;
    let hit = prompt - 16; // all but the last block (the prompt less one token)
    let rr = run(&trace, 2, RoutingPolicy::RoundRobin);
    assert_eq!(
        cached(&rr),
        6 * hit,
        "each document computed once per instance"
    );
    for policy in [
        RoutingPolicy::CacheAware(CacheAwareParams::default()),
        RoutingPolicy::KvAware,
    ] {
        let out = run(&trace, 2, policy);
        assert_eq!(cached(&out), 9 * hit, "{policy:?}: 3 first sightings only");
        for doc in 0..3 {
            let homes: Vec<u32> = (0..4).map(|round| out.instances[round * 3 + doc]).collect();
            assert!(
                homes.iter().all(|&k| k == homes[0]),
                "{policy:?}: {homes:?}"
            );
        }
    }
    // A prompt nobody shares goes to the least loaded instance; with every request done
    // before the next (2 s apart), that is the first, for both.
    for policy in [
        RoutingPolicy::CacheAware(CacheAwareParams::default()),
        RoutingPolicy::KvAware,
    ] {
        assert_eq!(&run(&trace, 2, policy).instances[..3], [0, 0, 0]);
    }
    // 50 ms apart, a 4,096-token prompt is still in flight when the next document comes:
    // new documents go where the load is least, and their repeats follow them.
    let busy = repeated_documents(3, 8, 4, 50.0);
    let out = run(
        &busy,
        2,
        RoutingPolicy::CacheAware(CacheAwareParams::default()),
    );
    assert_eq!(&out.instances[..3], [0, 1, 0], "{:?}", out.instances);
    assert_eq!(out.instances[3..6], out.instances[..3], "repeats follow");
}

/// Requests that all arrive together are spread evenly by least-loaded routing, and
/// cache-aware routing falls back to the least loaded instance once the loads are out of
/// balance, even for a prompt another instance has seen.
#[test]
fn load_balancing_spreads_a_burst() {
    let trace = repeated_documents(1, 2, 40, 0.0);
    let out = run(&trace, 4, RoutingPolicy::LeastLoaded);
    let mut counts = [0u32; 4];
    for &k in &out.instances {
        counts[k as usize] += 1;
    }
    assert_eq!(counts, [10, 10, 10, 10]);

    let params = CacheAwareParams {
        balance_abs: 4,
        balance_rel: 1.0001,
        ..CacheAwareParams::default()
    };
    let out = run(&trace, 4, RoutingPolicy::CacheAware(params));
    let first_elsewhere = out.instances.iter().position(|&k| k != out.instances[0]);
    assert_eq!(
        first_elsewhere,
        Some(5),
        "the same prompt stays on its instance until 5 are in flight there (gap > 4)"
    );
}

fn counts(out: &RoundOutcome, n: usize) -> Vec<u32> {
    let mut c = vec![0u32; n];
    for &k in &out.instances {
        c[k as usize] += 1;
    }
    c
}

/// `random` spreads requests about evenly, not in turn, and a run repeats (the draws are a
/// fixed sequence). `power_of_two` splits a burst on two instances evenly, as least-loaded
/// does (it always draws both); when every request ends before the next, the loads tie and
/// it takes the first drawn, so both instances serve, where least-loaded sends every
/// request to the first.
#[test]
fn random_and_power_of_two_draw_instances() {
    let spaced = repeated_documents(400, 1, 1, 2000.0);
    let out = run(&spaced, 4, RoutingPolicy::Random);
    let c = counts(&out, 4);
    assert!(c.iter().all(|&k| (70..=130).contains(&k)), "{c:?}");
    assert_ne!(&out.instances[..8], [0, 1, 2, 3, 0, 1, 2, 3]);
    assert_eq!(
        run(&spaced, 4, RoutingPolicy::Random).instances,
        out.instances
    );

    let burst = repeated_documents(1, 2, 40, 0.0);
    assert_eq!(
        counts(&run(&burst, 2, RoutingPolicy::PowerOfTwo), 2),
        [20, 20]
    );
    let few = repeated_documents(40, 1, 1, 2000.0);
    assert_eq!(
        counts(&run(&few, 2, RoutingPolicy::LeastLoaded), 2),
        [40, 0]
    );
    let c = counts(&run(&few, 2, RoutingPolicy::PowerOfTwo), 2);
    assert!(c.iter().all(|&k| k >= 10), "{c:?}");
}

/// Among instances whose trees match a prompt equally, `vllm-router` 0.1.17's cache-aware
/// policy takes the least loaded (the first on ties), not the one sent it last. With any
/// difference in load counting as imbalance, four copies of one prompt at once: the first
/// to instance 0, the second to the idle instance 1 (imbalance), so both trees hold it; the
/// third finds the loads even and both matching, and goes to instance 0; the fourth, with
/// instance 0 busier, to instance 1.
#[test]
fn cache_aware_breaks_a_tie_of_matches_by_load() {
    let trace = repeated_documents(1, 2, 4, 0.0);
    let params = CacheAwareParams {
        balance_abs: 0,
        balance_rel: 1.0,
        ..CacheAwareParams::default()
    };
    let out = run(&trace, 2, RoutingPolicy::CacheAware(params));
    assert_eq!(out.instances, [0, 1, 0, 1]);
}

/// A shared remote tier: one document asked on instance 1 is found there by instance 2,
/// after the CPU tier of instance 2 misses, and the wait for it is the link's: the same
/// trace with a slower link gives a later first token, and without the tier nothing hits.
#[test]
fn a_shared_remote_tier_serves_what_another_instance_stored() {
    use ldqa_sim::remote_tier::RemoteTierConfig;
    // Document 0 twice, 2 s apart: round robin sends the second to instance 2.
    let trace = repeated_documents(1, 8, 2, 2000.0);
    let lmcache = seed(EngineMode::Lmcache {
        cpu_gib_per_rank: None,
    });
    let run_with = |remote: Option<RemoteTierConfig>| {
        let spec = ClusterSpec {
            instances: 2,
            policy: RoutingPolicy::RoundRobin,
            remote,
            text_prompts: false,
        };
        simulate_trace_on_cluster(&lmcache, &trace, &TraceOptions::default(), &spec).unwrap()
    };
    let link = |gbps: f64| RemoteTierConfig {
        capacity_chunks: 1000,
        bytes_per_token: lmcache.config.model.kv_bytes_per_token,
        bytes_per_s: gbps * 1e9 / 8.0,
        latency_ns: 1_000_000,
    };
    let alone = run_with(None);
    assert_eq!(alone.records[1].usage.unwrap().cached_tokens, Some(0));
    let fast = run_with(Some(link(100.0)));
    let slow = run_with(Some(link(10.0)));
    // 4,096 tokens, 16 chunks: a full hit gives back one token.
    for out in [&fast, &slow] {
        assert_eq!(out.instances, [0, 1]);
        assert_eq!(out.records[1].usage.unwrap().cached_tokens, Some(4095));
        let prefix = out.records[1].prefix.unwrap();
        assert_eq!((prefix.gpu_hit_tokens, prefix.cpu_hit_tokens), (0, 4095));
    }
    // 4,095 tokens of 128 KiB: 537 MB, 43 ms at 100 Gb/s, 430 ms at 10 Gb/s.
    let ttft = |o: &RoundOutcome| o.records[1].ttft_ns().unwrap() as f64 / 1e6;
    let gap = ttft(&slow) - ttft(&fast);
    let expected = 4095.0 * 131_072.0 * 8.0 * (1.0 / 10e9 - 1.0 / 100e9) * 1e3;
    assert!(
        (gap - expected).abs() < 1.0,
        "{gap} ms, expected {expected} ms"
    );
}

/// `kv_aware` weighs hits against load as `vllm-router` 0.1.17 does: the same document
/// sent again while its first copy still prefills goes to the idle instance (the busy
/// one's cost counts the prefill in flight and the request running), and once both are
/// idle and both hold it, to the first.
#[test]
fn kv_aware_weighs_hits_against_the_prefill_in_flight() {
    // The first reaches its engine at 13 ms and prefills until 104 ms; its blocks are
    // cached (and announced) when its prefill is scheduled, so at 60 ms instance 0 would
    // hit all but the last block: the longest prefix alone would pick it.
    let requests = [0.0, 60.0, 10_000.0]
        .map(|at_ms| TraceRequest {
            arrival_ms: at_ms,
            input_length: 8 * 512,
            output_length: 8,
            hash_ids: (0..8).collect(),
            chat: None,
        })
        .to_vec();
    let trace = Trace {
        format: TraceFormat::Mooncake,
        requests,
    };
    let out = run(&trace, 2, RoutingPolicy::KvAware);
    assert_eq!(out.instances, [0, 1, 0]);
    let cached: Vec<u64> = out
        .records
        .iter()
        .map(|r| r.usage.unwrap().cached_tokens.unwrap())
        .collect();
    assert_eq!(cached, [0, 0, 8 * 512 - 16]);
}

/// `session` (production-stack): every turn of a conversation goes to the instance its
/// conversation hashes to, so later turns hit their history; requests without a session
/// go first to an instance never sent one, then to the one sent the fewest in the last
/// minute.
#[test]
fn session_keeps_a_conversation_on_one_instance() {
    let turn = |chat_id: i64, parent: Option<i64>, at_ms: f64, ids: &[u64]| TraceRequest {
        arrival_ms: at_ms,
        input_length: ids.len() as u64 * 16,
        output_length: 2,
        hash_ids: ids.to_vec(),
        chat: Some(ldqa_trace::format::ChatLink {
            chat_id,
            parent_chat_id: parent,
            turn: 1 + u32::from(parent.is_some()),
        }),
    };
    // Eight conversations of three turns, each turn its history plus 4 blocks.
    let mut requests = Vec::new();
    for round in 0..3u64 {
        for c in 0..8u64 {
            let id = (round * 8 + c + 1) as i64;
            let parent = (round > 0).then(|| id - 8);
            let ids: Vec<u64> = (0..4 * (round + 1)).map(|b| c * 1000 + b).collect();
            requests.push(turn(id, parent, (round * 8 + c) as f64 * 1000.0, &ids));
        }
    }
    let trace = Trace {
        format: TraceFormat::Bailian,
        requests,
    };
    let out = run(&trace, 3, RoutingPolicy::Session);
    for c in 0..8 {
        let mine: Vec<u32> = (0..3).map(|round| out.instances[round * 8 + c]).collect();
        assert!(
            mine.iter().all(|&k| k == mine[0]),
            "conversation {c}: {mine:?}"
        );
        // Later turns hit the whole previous turn, on the conversation's instance.
        for round in 1..3 {
            let cached = out.records[round * 8 + c].usage.unwrap().cached_tokens;
            assert_eq!(cached, Some(round as u64 * 64), "conversation {c}");
        }
    }
    let used: std::collections::BTreeSet<u32> = out.instances.iter().copied().collect();
    assert!(
        used.len() > 1,
        "every conversation on one instance: {used:?}"
    );

    let no_sessions = repeated_documents(5, 1, 1, 1000.0);
    let out = run(&no_sessions, 3, RoutingPolicy::Session);
    assert_eq!(out.instances, [0, 1, 2, 0, 1]);
}

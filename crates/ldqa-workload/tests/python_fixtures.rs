//! The Rust planner against what python3 produced (tests/data/gen_fixtures.py): same
//! random streams, same query orders, same miss prefixes, same prompts.

use ldqa_model::PromptSource;
use ldqa_workload::{PyRandom, Workload, WorkloadConfig};
use serde_json::Value;

fn fixtures() -> Value {
    let text = include_str!("data/python_random.json");
    serde_json::from_str(text).unwrap()
}

fn as_u128(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn raw_streams_match_cpython() {
    let data = fixtures();
    let streams = data["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 8);
    for s in streams {
        let seed = s["seed"].as_i64().unwrap();
        let mut r = PyRandom::new(seed);
        let u32s: Vec<u64> = (0..8).map(|_| u64::from(r.next_u32())).collect();
        let want: Vec<u64> = s["u32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(u32s, want, "seed {seed}");
        for k in [1u32, 7, 31, 33, 64, 65, 100] {
            assert_eq!(
                r.getrandbits(k),
                as_u128(&s["getrandbits"][k.to_string()]),
                "seed {seed} k {k}"
            );
        }
        let ns: [u128; 7] = [1, 2, 3, 10, 1000, (1 << 31) + 1, (1 << 40) + 3];
        for (n, want) in ns.iter().zip(s["randbelow"].as_array().unwrap()) {
            assert_eq!(r.randbelow(*n), as_u128(want), "seed {seed} n {n}");
        }
        for want in s["randint"].as_array().unwrap() {
            assert_eq!(
                r.randint(-10_000_000, 10_000_000),
                want.as_i64().unwrap(),
                "seed {seed}"
            );
        }
        let mut v: Vec<u64> = (0..20).collect();
        r.shuffle(&mut v);
        let want: Vec<u64> = s["shuffle20"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(v, want, "seed {seed}");
    }
}

#[test]
fn plans_match_upstream() {
    let data = fixtures();
    let plans = data["plans"].as_array().unwrap();
    assert!(plans.len() >= 60);
    let mut buf = String::new();
    let mut prompts_checked = 0;
    for p in plans {
        let config = WorkloadConfig {
            num_documents: p["num_documents"].as_u64().unwrap() as usize,
            document_length: p["document_length"].as_u64().unwrap() as usize,
            repeat_count: p["repeat_count"].as_u64().unwrap() as usize,
            repeat_mode: p["mode"].as_str().unwrap().parse().unwrap(),
            shuffle_seed: p["seed"].as_i64().unwrap(),
            hit_miss: p["hit_miss"].as_str().map(|s| s.parse().unwrap()),
            ..Default::default()
        };
        let w = Workload::build(&config).unwrap();
        let ctx = format!("{config:?}");
        let order: Vec<usize> = w.query.iter().map(|s| s.document_id).collect();
        let want: Vec<usize> = p["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(order, want, "{ctx}");
        for (s, want) in w.query.iter().zip(p["miss_values"].as_array().unwrap()) {
            let want = want.as_i64().map(|v| format!("{v} "));
            assert_eq!(s.miss_prefix, want, "{ctx} prompt {}", s.prompt_id);
            assert_eq!(s.is_miss, s.miss_prefix.is_some());
        }
        if let Some(prompts) = p["prompts"].as_array() {
            for (s, want) in w.query.iter().zip(prompts) {
                w.write_prompt(s, &mut buf);
                assert_eq!(buf, want.as_str().unwrap(), "{ctx}");
                prompts_checked += 1;
            }
        }
    }
    assert!(prompts_checked > 500);
}

#[test]
fn pre_warmup_prompts_match_upstream() {
    let data = fixtures();
    let w = Workload::build(&WorkloadConfig::default()).unwrap();
    let mut buf = String::new();
    let want = data["pre_warmup"].as_array().unwrap();
    assert_eq!(w.pre_warmup.len(), want.len());
    for (s, want) in w.pre_warmup.iter().zip(want) {
        w.write_prompt(s, &mut buf);
        assert_eq!(buf, want.as_str().unwrap());
    }
}

//! Properties of every plan: each document appears `repeat_count` times, misses sit
//! exactly where the ratio puts them, and a seed always gives the same plan.

use ldqa_workload::{HitMissRatio, RepeatMode, Workload, WorkloadConfig, MISS_PREFIX_RANGE};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn configs() -> impl Strategy<Value = WorkloadConfig> {
    let ratio = prop_oneof![
        Just(None),
        (0u32..5, 0u32..5)
            .prop_filter("not 0:0", |(h, m)| h + m > 0)
            .prop_map(Some)
    ];
    let mode = prop_oneof![
        Just(RepeatMode::Random),
        Just(RepeatMode::Tile),
        Just(RepeatMode::Interleave)
    ];
    (1usize..40, 1usize..4, 1usize..6, mode, any::<i64>(), ratio).prop_map(
        |(n, len, r, mode, seed, hm)| WorkloadConfig {
            num_documents: n,
            document_length: len,
            repeat_count: r,
            repeat_mode: mode,
            shuffle_seed: seed,
            hit_miss: hm.map(|(h, m)| HitMissRatio::new(h, m).unwrap()),
            ..Default::default()
        },
    )
}

proptest! {
    // Failing cases are kept next to this file (`proptest-regressions/properties.txt`).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_document_appears_repeat_count_times(config in configs()) {
        let w = Workload::build(&config).unwrap();
        prop_assert_eq!(w.query.len(), config.num_documents * config.repeat_count);
        let mut seen = vec![0usize; config.num_documents];
        for s in &w.query {
            seen[s.document_id] += 1;
        }
        prop_assert!(seen.iter().all(|&c| c == config.repeat_count));
        let warm: Vec<usize> = w.warmup.iter().map(|s| s.document_id).collect();
        prop_assert_eq!(warm, (0..config.num_documents).collect::<Vec<_>>());
        prop_assert!(w.warmup.iter().all(|s| s.is_miss && s.miss_prefix.is_none()));
        let (n, r) = (config.num_documents, config.repeat_count);
        let order: Vec<usize> = w.query.iter().map(|s| s.document_id).collect();
        match config.repeat_mode {
            RepeatMode::Tile => prop_assert!(order.iter().enumerate().all(|(i, &d)| d == i % n)),
            RepeatMode::Interleave => prop_assert!(order.iter().enumerate().all(|(i, &d)| d == i / r)),
            RepeatMode::Random => {}
        }
    }

    #[test]
    fn misses_exactly_where_the_ratio_puts_them(config in configs()) {
        let w = Workload::build(&config).unwrap();
        for (i, s) in w.query.iter().enumerate() {
            prop_assert_eq!(s.prompt_id, i);
            let want = config.hit_miss.is_some_and(|r| {
                i as u64 % (u64::from(r.hits()) + u64::from(r.misses())) >= u64::from(r.hits())
            });
            prop_assert_eq!(s.is_miss, want);
            prop_assert_eq!(s.miss_prefix.is_some(), want);
            if let Some(p) = &s.miss_prefix {
                let v: i64 = p.strip_suffix(' ').unwrap().parse().unwrap();
                prop_assert!((MISS_PREFIX_RANGE.0..=MISS_PREFIX_RANGE.1).contains(&v));
            }
        }
    }

    #[test]
    fn plans_are_deterministic_per_seed(config in configs()) {
        let a = Workload::build(&config).unwrap();
        let b = Workload::build(&config).unwrap();
        prop_assert_eq!(&a.query, &b.query);
        prop_assert_eq!(&a.warmup, &b.warmup);
        prop_assert_eq!(&a.pre_warmup, &b.pre_warmup);
    }
}

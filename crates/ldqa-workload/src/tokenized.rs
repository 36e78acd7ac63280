//! Tokenizer work: exact-length documents and exact prompt token counts.
//!
//! Everything here runs inside [`crate::Workload::build`], never while requests are sent.
//! Counts are without special tokens (no BOS, no chat template): what the document
//! itself weighs.

use std::path::{Path, PathBuf};

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenizers::Tokenizer;

use crate::documents::{hi_document, hi_document_into};
use crate::spool::Spool;
use crate::WorkloadError;

/// Rounds of encode-and-adjust before a document is declared impossible to fit.
const MAX_ADJUST_ROUNDS: usize = 64;
/// Documents shorter than this (bytes) are encoded whole to count a miss prefix.
const FULL_ENCODE_BYTES: usize = 4096;

/// A loaded tokenizer with truncation and padding switched off (a tokenizer.json may
/// carry either, and both would falsify counts).
pub(crate) struct Tok {
    inner: Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Tokenize {
        message: e.to_string(),
    }
}

/// Loads `path`, a tokenizer.json file or a directory containing one.
pub(crate) fn load(path: &Path) -> Result<Tok, WorkloadError> {
    let file: PathBuf = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(WorkloadError::TokenizerNotFound {
            path: path.to_path_buf(),
        });
    }
    let load_err = |e: &dyn std::fmt::Display| WorkloadError::TokenizerLoad {
        path: file.clone(),
        message: e.to_string(),
    };
    let mut inner = Tokenizer::from_file(&file).map_err(|e| load_err(&e))?;
    inner.with_truncation(None).map_err(|e| load_err(&e))?;
    inner.with_padding(None);
    Ok(Tok { inner })
}

impl Tok {
    /// Tokens in `text`, without special tokens.
    pub(crate) fn count(&self, text: &str) -> Result<usize, WorkloadError> {
        Ok(self.inner.encode_fast(text, false).map_err(tok_err)?.len())
    }

    /// Tokens in `text`, special tokens written in it (`<|eot_id|>`) counted as one each,
    /// none added: how vLLM tokenizes a rendered chat template.
    pub(crate) fn count_with_specials(&self, text: &str) -> Result<usize, WorkloadError> {
        Ok(self.inner.encode(text, false).map_err(tok_err)?.len())
    }

    /// Special tokens the tokenizer adds around any text (BOS, EOS): `encode("", true)`.
    pub(crate) fn special_tokens_added(&self) -> Result<usize, WorkloadError> {
        Ok(self.inner.encode("", true).map_err(tok_err)?.len())
    }

    /// Ids of ordinary vocabulary entries: every model id that has a token, minus all
    /// added tokens (specials such as `<|begin_of_text|>` and `[UNK]` among them).
    fn ordinary_ids(&self) -> Vec<u32> {
        let added = self.inner.get_added_tokens_decoder();
        let vocab = self.inner.get_vocab_size(false) as u32;
        (0..vocab)
            .filter(|id| !added.contains_key(id) && self.inner.id_to_token(*id).is_some())
            .collect()
    }
}

/// Random-token tokens being fitted at once, across threads. Each fit re-encodes its
/// whole document with offsets; two 100k-token fits side by side took a run with the
/// Llama-3 tokenizer from 120 MB (one at a time) to 221 MB, while two of 30k stayed at
/// 125 MB. Long documents are therefore fitted one at a time (twice the build time).
const RANDOM_FIT_TOKENS_AT_ONCE: usize = 64 * 1024;

/// Threads for `n` tasks: one per core (at most 16, at most `max`), at least one.
fn thread_count(n: usize, max: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 16)
        .min(max)
        .min(n)
        .max(1)
}

/// Runs `f(0..n)` on up to `max_threads` scoped threads; results in index order.
fn par_map<T: Send>(
    n: usize,
    max_threads: usize,
    f: impl Fn(usize) -> Result<T, WorkloadError> + Sync,
) -> Result<Vec<T>, WorkloadError> {
    let threads = thread_count(n, max_threads);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let parts: Vec<Result<Vec<T>, WorkloadError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(f)
                        .collect::<Result<Vec<T>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("invariant: workers do not panic"))
            .collect()
    });
    let mut parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut iters: Vec<_> = parts.iter_mut().map(|p| p.drain(..)).collect();
    Ok((0..n)
        .map(|i| {
            iters[i % threads]
                .next()
                .expect("invariant: striped results")
        })
        .collect())
}

fn impossible(document_id: usize, target_tokens: usize, detail: String) -> WorkloadError {
    WorkloadError::ExactLengthImpossible {
        document_id,
        target_tokens,
        detail,
    }
}

/// For each document, the number `k` of `" hi"` words such that `"{id}" + " hi" * k` is
/// exactly `target` tokens, found by encoding and adjusting `k` by the difference.
pub(crate) fn exact_hi_words(
    tok: &Tok,
    n: usize,
    target: usize,
) -> Result<Vec<usize>, WorkloadError> {
    par_map(n, usize::MAX, |id| {
        let id_tokens = tok.count(&id.to_string())?;
        if id_tokens > target {
            return Err(impossible(
                id,
                target,
                format!("the id prefix alone is {id_tokens} tokens"),
            ));
        }
        let mut k = target - id_tokens;
        let mut tried: Vec<(usize, usize)> = Vec::new();
        let mut text = String::new();
        for _ in 0..MAX_ADJUST_ROUNDS {
            text.clear();
            hi_document_into(id, k, &mut text);
            let got = tok.count(&text)?;
            if got == target {
                return Ok(k);
            }
            tried.push((k, got));
            let mut next = if got < target {
                k + (target - got)
            } else {
                k.saturating_sub(got - target)
            };
            if tried.iter().any(|&(t, _)| t == next) {
                // Jumping by the difference oscillates: walk one word at a time instead.
                next = if got < target {
                    k + 1
                } else {
                    k.saturating_sub(1)
                };
                if tried.iter().any(|&(t, _)| t == next) {
                    break;
                }
            }
            k = next;
        }
        let closest = tried
            .iter()
            .min_by_key(|&&(_, got)| got.abs_diff(target))
            .map_or(0, |t| t.1);
        Err(impossible(
            id,
            target,
            format!("closest reached: {closest} tokens"),
        ))
    })
}

/// Uniform in `[0, n)` by rejection on `next_u64` (no `rand` distributions, so the text
/// cannot change with a `rand` release): accept `x >= 2^64 mod n`, then `x mod n`.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % n;
        }
    }
}

/// Appends the decoding of `count` random ordinary tokens, with a space between when
/// neither side brings whitespace (decoders without a space marker join words bare).
fn append_random(
    tok: &Tok,
    ids: &[u32],
    rng: &mut ChaCha8Rng,
    text: &mut String,
    count: usize,
) -> Result<(), WorkloadError> {
    let sample: Vec<u32> = (0..count)
        .map(|_| ids[below(rng, ids.len() as u64) as usize])
        .collect();
    let piece = tok.inner.decode(&sample, true).map_err(tok_err)?;
    let needs_space =
        !text.ends_with(char::is_whitespace) && !piece.starts_with(char::is_whitespace);
    if needs_space {
        text.push(' ');
    }
    text.push_str(&piece);
    Ok(())
}

/// Random-token documents of exactly `target` tokens: `"{id}"`, then decoded random
/// ordinary tokens; re-encoded and cut at a token start or extended until exact.
/// Document `id` draws from ChaCha8 stream `id` of seed `seed`, so it depends on
/// nothing but the seed and its id. Built a few at a time and spooled to a temporary
/// file, so memory does not grow with `n`.
pub(crate) fn random_documents(
    tok: &Tok,
    n: usize,
    target: usize,
    seed: i64,
) -> Result<Spool, WorkloadError> {
    let ids = tok.ordinary_ids();
    if ids.is_empty() {
        return Err(WorkloadError::EmptyVocabulary);
    }
    let mut spool = Spool::new().map_err(WorkloadError::spool)?;
    let threads = thread_count(n, (RANDOM_FIT_TOKENS_AT_ONCE / target.max(1)).max(1));
    // Enough per batch to keep every thread busy, few enough to hold in memory.
    let batch = 4 * threads;
    for first in (0..n).step_by(batch) {
        let count = batch.min(n - first);
        for text in par_map(count, threads, |j| {
            random_document(tok, &ids, first + j, target, seed)
        })? {
            spool.push(&text).map_err(WorkloadError::spool)?;
        }
    }
    Ok(spool)
}

/// Random-token document `id` (see [`random_documents`]).
fn random_document(
    tok: &Tok,
    ids: &[u32],
    id: usize,
    target: usize,
    seed: i64,
) -> Result<String, WorkloadError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
    rng.set_stream(id as u64);
    let mut text = id.to_string();
    let base = text.len();
    let id_tokens = tok.count(&text)?;
    if id_tokens > target {
        return Err(impossible(
            id,
            target,
            format!("the id prefix alone is {id_tokens} tokens"),
        ));
    }
    let mut got = id_tokens;
    for _ in 0..MAX_ADJUST_ROUNDS {
        if got < target {
            append_random(tok, ids, &mut rng, &mut text, target - got)?;
        }
        let enc = tok.inner.encode(text.as_str(), false).map_err(tok_err)?;
        got = enc.len();
        if got == target {
            return Ok(text);
        }
        if got > target {
            // Cut where token `target` starts (rounded down to a char boundary; byte-level
            // tokens can split a character), but never into the id prefix.
            let mut cut = enc.get_offsets()[target].0.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == text.len() {
                cut = text[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
            }
            text.truncate(cut.max(base));
            got = tok.count(&text)?;
            if got == target {
                return Ok(text);
            }
        }
    }
    Err(impossible(
        id,
        target,
        format!("closest reached: {got} tokens"),
    ))
}

/// Where `doc` may be cut for a local miss-prefix check: the first whitespace at or
/// after byte `at` (so the rest starts a new word), if any.
fn whitespace_cut(doc: &str, at: usize) -> Option<usize> {
    doc.char_indices()
        .skip_while(|&(i, _)| i < at)
        .find(|&(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
}

/// The change in token count that `prefix` makes in front of a document starting with
/// `head`. A prefix only changes tokenisation near the join, so the change is measured
/// on two cuts of `head` (after 256 and 1024 bytes); `None` when they disagree or `head`
/// is too short to cut, and the caller must encode the whole prompt.
fn prefix_delta(tok: &Tok, prefix: &str, head: &str) -> Result<Option<i64>, WorkloadError> {
    let (Some(short), Some(long)) = (whitespace_cut(head, 256), whitespace_cut(head, 1024)) else {
        return Ok(None);
    };
    let mut buf = String::with_capacity(prefix.len() + long);
    let mut delta = |cut: &str| -> Result<i64, WorkloadError> {
        buf.clear();
        buf.push_str(prefix);
        buf.push_str(cut);
        Ok(tok.count(&buf)? as i64 - tok.count(cut)? as i64)
    };
    let (d_short, d_long) = (delta(&head[..short])?, delta(&head[..long])?);
    Ok((d_short == d_long).then_some(d_short))
}

fn with_delta(doc_tokens: usize, delta: i64) -> u64 {
    (doc_tokens as i64 + delta).max(0) as u64
}

/// Tokens of `prefix + doc`, knowing that `doc` alone is `doc_tokens` long.
pub(crate) fn prefixed_tokens(
    tok: &Tok,
    prefix: &str,
    doc: &str,
    doc_tokens: usize,
) -> Result<u64, WorkloadError> {
    if doc.len() >= FULL_ENCODE_BYTES {
        if let Some(d) = prefix_delta(tok, prefix, doc)? {
            return Ok(with_delta(doc_tokens, d));
        }
    }
    Ok(tok.count(&format!("{prefix}{doc}"))? as u64)
}

/// [`prefixed_tokens`] for the `" hi"` document `id` of `words` words, rendering only
/// its head unless the whole prompt must be encoded.
pub(crate) fn prefixed_hi_tokens(
    tok: &Tok,
    prefix: &str,
    id: usize,
    words: usize,
    doc_tokens: usize,
) -> Result<u64, WorkloadError> {
    // 500 words is about 1.5 kB, past both cuts of `prefix_delta`.
    const HEAD_WORDS: usize = 500;
    if words > HEAD_WORDS {
        if let Some(d) = prefix_delta(tok, prefix, &hi_document(id, HEAD_WORDS))? {
            return Ok(with_delta(doc_tokens, d));
        }
    }
    let mut text = prefix.to_owned();
    hi_document_into(id, words, &mut text);
    Ok(tok.count(&text)? as u64)
}

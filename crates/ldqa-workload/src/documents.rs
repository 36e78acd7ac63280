//! Document texts, rendered on demand.
//!
//! Upstream's documents are `str(i) + " " + " ".join(["hi"] * n)`, which is
//! `"{i}" + " hi" * n`; its pre-warmup prompts are `str(i) + "xx" + " ".join(["hi"] * 1000)`.
//! Neither is stored: a document is its id and its word count. Random-token documents
//! are spooled to a temporary file ([`crate::spool`]).

use std::fmt::Write as _;
use std::sync::LazyLock;

use crate::spool::Spool;

/// Pre-warmup prompts sent (untimed) before the warmup round.
pub const PRE_WARMUP_PROMPTS: usize = 5;
/// `"hi"` words in each pre-warmup prompt.
pub const PRE_WARMUP_WORDS: usize = 1000;

/// `" hi"` repeated, appended in blocks rather than word by word.
const CHUNK_WORDS: usize = 1024;
static HI_CHUNK: LazyLock<String> = LazyLock::new(|| " hi".repeat(CHUNK_WORDS));

/// Appends `" hi"` `words` times.
fn push_hi_words(words: usize, buf: &mut String) {
    buf.reserve(3 * words);
    let chunk = HI_CHUNK.as_str();
    for _ in 0..words / CHUNK_WORDS {
        buf.push_str(chunk);
    }
    buf.push_str(&chunk[..3 * (words % CHUNK_WORDS)]);
}

/// Appends document `id` of `words` words: `"{id}" + " hi" * words`.
pub(crate) fn hi_document_into(id: usize, words: usize, buf: &mut String) {
    let _ = write!(buf, "{id}"); // writing to a String cannot fail
    push_hi_words(words, buf);
}

/// Document `id` of `words` words, as a new string.
pub(crate) fn hi_document(id: usize, words: usize) -> String {
    let mut s = String::new();
    hi_document_into(id, words, &mut s);
    s
}

/// Appends pre-warmup prompt `i`: `"{i}xx" + "hi" + " hi" * 999`.
pub(crate) fn pre_warmup_into(i: usize, buf: &mut String) {
    let _ = write!(buf, "{i}xxhi");
    push_hi_words(PRE_WARMUP_WORDS - 1, buf);
}

/// How the documents of a workload are held.
#[derive(Clone)]
pub(crate) enum Documents {
    /// `" hi"` documents: word count per document (all equal without a tokenizer).
    Hi(Vec<usize>),
    /// Random-token documents, in an unlinked temporary file (see [`crate::spool`]).
    Spooled(std::sync::Arc<Spool>),
}

impl Documents {
    pub(crate) fn len(&self) -> usize {
        match self {
            Documents::Hi(words) => words.len(),
            Documents::Spooled(spool) => spool.len(),
        }
    }

    /// Appends document `id`; returns false (appending nothing) if there is none.
    pub(crate) fn append(&self, id: usize, buf: &mut String) -> bool {
        match self {
            Documents::Hi(words) => match words.get(id) {
                Some(&w) => hi_document_into(id, w, buf),
                None => return false,
            },
            Documents::Spooled(spool) => return spool.append(id, buf),
        }
        true
    }

    /// Length of document `id` in bytes.
    pub(crate) fn len_bytes(&self, id: usize) -> Option<usize> {
        match self {
            Documents::Hi(words) => words.get(id).map(|w| decimal_digits(id) + 3 * w),
            Documents::Spooled(spool) => spool.len_bytes(id),
        }
    }
}

/// A summary: the texts can weigh gigabytes.
impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Documents::Hi(words) => f
                .debug_struct("Hi")
                .field("documents", &words.len())
                .finish(),
            Documents::Spooled(spool) => f
                .debug_struct("Spooled")
                .field("documents", &spool.len())
                .field("bytes", &spool.total_bytes())
                .finish(),
        }
    }
}

fn decimal_digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hi_document_matches_upstream_form() {
        // str(i) + " " + " ".join(["hi"] * n)
        for (id, n) in [(0, 1), (7, 3), (12, 1023), (345, 1024), (9, 2049)] {
            let upstream = format!("{id} {}", vec!["hi"; n].join(" "));
            assert_eq!(hi_document(id, n), upstream);
            assert_eq!(
                Documents::Hi(vec![n; id + 1]).len_bytes(id),
                Some(upstream.len())
            );
        }
        assert_eq!(hi_document(3, 0), "3");
    }

    #[test]
    fn pre_warmup_matches_upstream_form() {
        let mut s = String::new();
        pre_warmup_into(4, &mut s);
        assert_eq!(s, format!("4xx{}", vec!["hi"; 1000].join(" ")));
    }

    #[test]
    fn missing_document_appends_nothing() {
        let mut s = String::from("x");
        assert!(!Documents::Hi(vec![2]).append(1, &mut s));
        let mut spool = Spool::new().unwrap();
        spool.push("ab").unwrap();
        spool.push("c").unwrap();
        let spooled = Documents::Spooled(std::sync::Arc::new(spool));
        assert!(!spooled.append(2, &mut s));
        assert_eq!(s, "x");
        let debug = format!("{spooled:?}");
        assert_eq!(debug, "Spooled { documents: 2, bytes: 3 }");
    }
}

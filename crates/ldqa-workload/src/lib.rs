//! Long Doc QA workload: documents, repeat modes, hit/miss plans, seeded randomness.
//!
//! Plans the requests of LMCache's `benchmarks/long_doc_qa/long_doc_qa.py` exactly: the
//! same pre-warmup prompts, the same documents, the same query order and the same miss
//! prefixes for the same `--shuffle-seed`, because upstream's use of Python's `random`
//! is reproduced bit for bit ([`PyRandom`]).
//!
//! Layout:
//! - [`config`]: [`WorkloadConfig`] and its flag values ([`RepeatMode`], [`HitMissRatio`],
//!   [`TextSource`]), with validation.
//! - [`Workload`]: the three rounds as [`RequestSpec`]s, and [`PromptSource`] to render
//!   them. The default `"hi"` documents are never stored (1,000 documents of 100k words
//!   plan in kilobytes); prompts are rendered into a caller's reused buffer when sent.
//! - [`pyrandom`]: CPython's Mersenne Twister, `shuffle` and `randint`.
//! - [`chat_template`]: what a model folder's own chat template adds to a prompt.
//! - [`multi_round`]: LMCache's multi-round QA workload, a clock-free state machine.
//! - Every spec carries `prompt_tokens`: with `--tokenizer` exact (documents are exactly
//!   `document_length` tokens, checked by re-encoding), else [`approx`]'s count. Random-token documents
//!   ([`TextSource::Random`]) are spooled to an unlinked temporary file, not held in
//!   memory. All tokenizer work happens in [`Workload::build`].
//!
//! ```
//! use ldqa_model::PromptSource;
//! use ldqa_workload::{Workload, WorkloadConfig};
//!
//! let config = WorkloadConfig {
//!     num_documents: 2,
//!     document_length: 3,
//!     hit_miss: Some("1:1".parse()?),
//!     ..WorkloadConfig::default()
//! };
//! let workload = Workload::build(&config)?;
//! assert_eq!(workload.query.len(), 4);
//! let mut prompt = String::new();
//! workload.write_prompt(&workload.warmup[1], &mut prompt);
//! assert_eq!(prompt, "1 hi hi hi");
//! workload.write_prompt(&workload.query[1], &mut prompt); // a miss: "<random int> <doc>"
//! assert!(workload.query[1].is_miss && prompt.ends_with(" hi hi hi"));
//! # Ok::<(), ldqa_workload::WorkloadError>(())
//! ```

#![warn(missing_docs)]

pub mod approx;
pub mod arrivals;
pub mod chat_template;
pub mod config;
mod documents;
mod error;
pub mod multi_round;
pub mod pyrandom;
mod spool;
mod tokenized;
mod workload;

pub use config::{HitMissRatio, RepeatMode, TextSource, WorkloadConfig};
pub use documents::{PRE_WARMUP_PROMPTS, PRE_WARMUP_WORDS};
pub use error::WorkloadError;
pub use ldqa_model::{PromptSource, RequestSpec};
pub use pyrandom::PyRandom;
pub use workload::{repeat_order, Workload, MISS_PREFIX_RANGE};

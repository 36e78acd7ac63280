//! Model and GPU specifications: catalogs and loaders (config.json, safetensors headers, HF cache, Hub).
//!
//! Layout:
//! - [`model`]: [`ModelSpec`] (architecture, parameter counts, weight bytes) and
//!   [`ModelSpec::kv_bytes_per_token`].
//! - [`gpu`]: [`GpuSpec`] (memory as torch reports it, bandwidth, FLOPS, host link).
//! - [`config`]: `config.json` → [`ModelSpec`]; [`params`]: parameters from the architecture.
//! - [`safetensors`]: weight bytes from safetensors headers and `model.safetensors.index.json`.
//! - [`catalog`]: the built-in model and GPU tables (`data/*.json`).
//! - [`resolve`]: a `--model` argument → [`ModelSpec`] (local dir, HF cache, catalog, Hub).
//! - [`hub`]: the Hugging Face Hub client (`HF_ENDPOINT`, `HF_TOKEN`, short timeout).
//!
//! ```
//! use ldqa_specs::{catalog, KvDtype};
//! let m = catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap();
//! assert_eq!(m.kv_bytes_per_token(1, KvDtype::Auto), 128 * 1024);
//! let g = catalog::gpu("h100-80gb").unwrap();
//! assert!(g.memory_gib() > 79.0);
//! ```

#![warn(missing_docs)]

pub mod catalog;
pub mod config;
pub mod error;
pub mod gpu;
pub mod hub;
pub mod model;
pub mod params;
pub mod resolve;
pub mod safetensors;
pub mod suggest;

pub use error::SpecError;
pub use gpu::{GpuClass, GpuSpec, GIB_BYTES};
pub use hub::Hub;
pub use model::{AttentionKind, KvDtype, ModelSpec, MoeSpec, Quantization};
pub use resolve::{resolve_model, ResolveOptions, SpecOrigin};

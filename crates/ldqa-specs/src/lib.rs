//! Model and GPU specifications: catalogs and loaders (config.json, safetensors headers, HF cache, Hub).

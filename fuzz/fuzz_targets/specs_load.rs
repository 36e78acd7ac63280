//! Model description loading: `config.json` (`parse_config`, then everything derived from the
//! spec) and safetensors files (`read_header` on a real file, `parse_header` on the bytes).
//! The first byte picks which; the rest is the file.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ldqa_specs::{config, params, safetensors, KvDtype};

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("ldqa-fuzz-{}.safetensors", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        let Ok(text) = std::str::from_utf8(file) else {
            return;
        };
        if let Ok(spec) = config::parse_config(text, "fuzz/model", "config.json") {
            for tp in [1, 2, 3, 4, 8, 64] {
                for dtype in [KvDtype::Auto, KvDtype::Bf16, KvDtype::Fp8, KvDtype::Fp8DsMla] {
                    let _ = spec.kv_bytes_per_token(tp, dtype);
                    let _ = spec.kv_bytes_per_token_per_layer(tp, dtype);
                }
                let _ = spec.kv_heads_per_rank(tp);
                let _ = spec.kv_replication(tp);
                let _ = spec.weight_bytes_per_rank(tp);
            }
            let _ = spec.global_layers();
            let _ = spec.sliding_layers();
            let p = params::breakdown(&spec);
            let _ = (p.total(), p.active());
            let _ = params::weight_bytes(&spec, &p);
        }
    } else {
        let path = scratch();
        let mut f = std::fs::File::create(path).expect("scratch file");
        f.write_all(file).expect("scratch write");
        drop(f);
        let from_file = safetensors::read_header(path);
        // The same file through the byte-level parser must agree when the framing is valid.
        if file.len() >= 8 {
            let n = u64::from_le_bytes(file[..8].try_into().unwrap());
            if n <= 100_000_000 && n.saturating_add(8) <= file.len() as u64 {
                let json = &file[8..8 + n as usize];
                let data_len = file.len() as u64 - 8 - n;
                let from_bytes = safetensors::parse_header(json, data_len, path);
                assert_eq!(from_file.is_ok(), from_bytes.is_ok());
                if let (Ok(a), Ok(b)) = (&from_file, &from_bytes) {
                    assert_eq!(a, b);
                    // Tensors own disjoint byte ranges inside the data.
                    assert!(a.bytes <= data_len);
                    let _ = a.elements();
                }
            }
        }
    }
});

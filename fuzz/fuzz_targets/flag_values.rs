//! Value parsers behind the `ldqa` flags: `--hit-miss-ratio`, `--repeat-mode`,
//! `--document-text`, `--endpoint`, `--kv-cache-dtype`, `--vllm-version`, `--gpu`, `--model`
//! (catalog lookup and the "did you mean" suggestions). Parsed values must print back to
//! something that parses to the same value.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use ldqa_loadgen::Endpoint;
use ldqa_recommend::VllmVersion;
use ldqa_specs::{catalog, KvDtype};
use ldqa_workload::{HitMissRatio, RepeatMode, TextSource};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    if let Ok(r) = HitMissRatio::from_str(s) {
        assert_eq!(HitMissRatio::from_str(&r.to_string()).ok(), Some(r));
        let period = r.hits() as usize + r.misses() as usize;
        let misses = (0..period.min(64)).filter(|&i| r.is_miss(i)).count();
        assert!(misses <= r.misses() as usize);
    }
    if let Ok(m) = RepeatMode::from_str(s) {
        assert_eq!(m.as_str(), s);
    }
    if let Ok(t) = TextSource::from_str(s) {
        assert_eq!(t.as_str(), s);
    }
    if let Ok(e) = Endpoint::new(s, Some("k".into())) {
        assert!(!e.base().ends_with('/') || e.base().chars().all(|c| c == '/'));
        let _ = e.url("chat/completions");
    }
    let _ = KvDtype::parse(s);
    if let Ok(v) = VllmVersion::parse(s) {
        assert_eq!(VllmVersion::parse(&v.to_string()).ok(), Some(v));
    }
    // Suggestions are quadratic in the name's length; flag values are short.
    if s.len() <= 256 {
        let _ = catalog::model(s);
        let _ = catalog::suggest_models(s);
        let _ = catalog::gpu(s);
        let _ = catalog::gpu_by_device_name(s);
    }
});

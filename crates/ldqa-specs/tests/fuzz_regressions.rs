//! Inputs found by the `specs_load` fuzz target (fuzz/, see docs/fuzzing.md), replayed forever.

use std::path::Path;

use ldqa_specs::safetensors::{parse_header, read_header};

/// A safetensors file: 8-byte little-endian header length, the header, `data_len` zero bytes.
fn file(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    bytes
}

#[test]
fn overlapping_tensors_are_rejected_not_counted_twice() {
    // Minimised from crash-0643e538…: two tensors over the same 4 bytes summed to 8 bytes.
    let header = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
    let err = parse_header(header.as_bytes(), 4, Path::new("x.safetensors")).unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.safetensors");
    std::fs::write(&p, file(header, 4)).unwrap();
    assert!(read_header(&p).is_err());
}

#[test]
fn adjacent_and_empty_tensors_still_load() {
    let header = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#;
    let w = parse_header(header.as_bytes(), 8, Path::new("x.safetensors")).unwrap();
    assert_eq!(w.bytes, 8);
    assert_eq!(w.elements(), 6);
}

#[test]
fn huge_element_counts_of_unknown_dtypes_do_not_overflow() {
    // Unknown dtypes (sub-byte ones such as F4) are not checked against their bytes, so their
    // element counts are whatever the shape says; summing them used to overflow.
    let big = u64::MAX / 2 + 1;
    let header = format!(
        r#"{{"a":{{"dtype":"F4","shape":[{big}],"data_offsets":[0,0]}},"b":{{"dtype":"F4","shape":[{big}],"data_offsets":[0,0]}}}}"#
    );
    let err = parse_header(header.as_bytes(), 0, Path::new("x.safetensors")).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");

    let header = format!(
        r#"{{"a":{{"dtype":"F4","shape":[{big}],"data_offsets":[0,0]}},"b":{{"dtype":"E2","shape":[{big}],"data_offsets":[0,0]}}}}"#
    );
    let w = parse_header(header.as_bytes(), 0, Path::new("x.safetensors")).unwrap();
    assert_eq!(w.elements(), u64::MAX);
}

/// Known bug, not fixed here: `params::breakdown` multiplies the sizes unchecked, so a
/// `config.json` with huge sizes panics in debug builds (wraps in release). Found by hand while
/// reading the code the `specs_load` target covers; see docs/fuzzing.md.
#[test]
fn huge_config_sizes_are_refused_not_overflowed() {
    let config = r#"{"num_hidden_layers":1,"hidden_size":4294967296,"num_attention_heads":1,"head_dim":1,"intermediate_size":4294967296,"vocab_size":1}"#;
    let err = ldqa_specs::config::parse_config(config, "m", "config.json").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("hidden_size"),
        "{msg}"
    );
}

//! Weight sizes from safetensors headers and `model.safetensors.index.json`, without reading the
//! tensors themselves.
//!
//! Format (huggingface/safetensors README): an 8-byte little-endian header length `N`, then `N`
//! bytes of JSON mapping tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an
//! optional `"__metadata__"` object of strings.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::SpecError;

/// Headers larger than this are refused (the format's own reader uses 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What the headers say about the weights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightSummary {
    /// Bytes of tensor data.
    pub bytes: u64,
    /// Elements per dtype (`BF16`, `F8_E4M3`, `I32` for packed int4, …).
    pub elements_by_dtype: BTreeMap<String, u64>,
}

impl WeightSummary {
    /// All elements, every dtype counted.
    pub fn elements(&self) -> u64 {
        // Saturating: a dtype of unknown width may claim any element count.
        self.elements_by_dtype
            .values()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    fn add(&mut self, other: &WeightSummary) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        for (k, v) in &other.elements_by_dtype {
            let count = self.elements_by_dtype.entry(k.clone()).or_default();
            *count = count.saturating_add(*v);
        }
    }
}

/// Bytes per element of a safetensors dtype; `None` for sub-byte or unknown ones.
fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

fn bad(path: &Path, problem: impl Into<String>) -> SpecError {
    SpecError::MalformedSafetensors {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Read and check the header of one `.safetensors` file.
pub fn read_header(path: &Path) -> Result<WeightSummary, SpecError> {
    let io = |source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| {
        bad(
            path,
            format!("file is {file_len} bytes, shorter than the 8-byte header length"),
        )
    })?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n + 8 > file_len {
        return Err(bad(
            path,
            format!("header length {n} does not fit in a {file_len}-byte file"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(io)?;
    parse_header(&buf, file_len - 8 - n, path)
}

/// Check a header's JSON (`data_len` = bytes after the header) and sum its tensors.
pub fn parse_header(json: &[u8], data_len: u64, path: &Path) -> Result<WeightSummary, SpecError> {
    let v: Value = serde_json::from_slice(json)
        .map_err(|e| bad(path, format!("header is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad(path, "header is not a JSON object"))?;
    let mut out = WeightSummary::default();
    let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(path, format!("tensor `{name}` has no dtype")))?;
        let shape = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(path, format!("tensor `{name}` has no shape")))?;
        let mut numel: u64 = 1;
        for d in shape {
            let d = d.as_u64().ok_or_else(|| {
                bad(
                    path,
                    format!("tensor `{name}` has a non-integer dimension {d}"),
                )
            })?;
            numel = numel
                .checked_mul(d)
                .ok_or_else(|| bad(path, format!("tensor `{name}` shape overflows")))?;
        }
        let offs = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| {
                bad(
                    path,
                    format!("tensor `{name}` needs data_offsets [begin, end]"),
                )
            })?;
        let (b, e) = (offs[0].as_u64(), offs[1].as_u64());
        let (Some(b), Some(e)) = (b, e) else {
            return Err(bad(
                path,
                format!("tensor `{name}` has non-integer data_offsets"),
            ));
        };
        if e < b || e > data_len {
            return Err(bad(
                path,
                format!("tensor `{name}` offsets [{b}, {e}] exceed the {data_len} data bytes"),
            ));
        }
        if let Some(s) = dtype_bytes(dtype) {
            if numel.checked_mul(s) != Some(e - b) {
                return Err(bad(
                    path,
                    format!(
                        "tensor `{name}` is {dtype} {shape:?} = {} bytes but spans {} bytes",
                        numel.saturating_mul(s),
                        e - b
                    ),
                ));
            }
        }
        out.bytes += e - b;
        // Unknown dtypes leave `numel` unchecked against the bytes, so the sum can overflow.
        let count = out.elements_by_dtype.entry(dtype.to_string()).or_default();
        *count = count
            .checked_add(numel)
            .ok_or_else(|| bad(path, format!("element count of {dtype} overflows")))?;
        ranges.push((b, e, name));
    }
    // The format gives every tensor its own bytes: overlapping ranges would count bytes twice
    // (found by the `specs_load` fuzz target, see docs/fuzzing.md).
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        let ((_, end, first), (begin, _, second)) = (w[0], w[1]);
        if begin < end {
            return Err(bad(
                path,
                format!("tensors `{first}` and `{second}` overlap in the data bytes"),
            ));
        }
    }
    Ok(out)
}

/// Weights of a local model directory: every `*.safetensors` header when the shards are present,
/// else `metadata.total_size` of `model.safetensors.index.json`. `None` when neither exists.
pub fn weights_in_dir(dir: &Path) -> Result<Option<WeightSummary>, SpecError> {
    let mut shards: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| SpecError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    shards.sort();
    let index = dir.join("model.safetensors.index.json");
    let index_total = if index.is_file() {
        Some(read_index(&index)?)
    } else {
        None
    };
    if !shards.is_empty() {
        let mut sum = WeightSummary::default();
        for s in &shards {
            sum.add(&read_header(s)?);
        }
        // A partial download: trust the index for the total.
        if let Some(total) = index_total.filter(|t| *t > sum.bytes) {
            return Ok(Some(WeightSummary {
                bytes: total,
                elements_by_dtype: BTreeMap::new(),
            }));
        }
        return Ok(Some(sum));
    }
    Ok(index_total.map(|bytes| WeightSummary {
        bytes,
        elements_by_dtype: BTreeMap::new(),
    }))
}

/// `metadata.total_size` of a `model.safetensors.index.json`.
pub fn read_index(path: &Path) -> Result<u64, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| bad(path, format!("index is not valid JSON: {e}")))?;
    v.pointer("/metadata/total_size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(path, "index has no integer metadata.total_size"))
}

/// Write a safetensors file with the given `(name, dtype, shape)` tensors, zero-filled (for tests).
pub fn write_fixture(path: &Path, tensors: &[(&str, &str, &[u64])]) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let n: u64 = shape.iter().product::<u64>() * dtype_bytes(dtype).unwrap_or(1);
        header.insert(
            (*name).to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let h = serde_json::to_vec(&header)?;
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.resize(bytes.len() + offset as usize, 0);
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        write_fixture(
            &p,
            &[
                ("a", "BF16", &[4, 8]),
                ("b", "F8_E4M3", &[16]),
                ("c", "F32", &[2]),
            ],
        )
        .unwrap();
        let s = read_header(&p).unwrap();
        assert_eq!(s.bytes, 64 + 16 + 8);
        assert_eq!(s.elements(), 32 + 16 + 2);
        assert_eq!(s.elements_by_dtype["BF16"], 32);
        assert_eq!(weights_in_dir(dir.path()).unwrap().unwrap(), s);
    }

    #[test]
    fn names_the_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, [1, 2, 3]).unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("x.safetensors") && e.contains("shorter"), "{e}");

        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        std::fs::write(&p, &b).unwrap();
        assert!(read_header(&p)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));

        let json = br#"{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,4]}}"#;
        let e = parse_header(json, 100, &p).unwrap_err().to_string();
        assert!(e.contains("spans 4 bytes"), "{e}");
        let e = parse_header(b"[1]", 0, &p).unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
        let json = br#"{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#;
        assert!(parse_header(json, 4, &p)
            .unwrap_err()
            .to_string()
            .contains("exceed"));
    }

    #[test]
    fn every_byte_prefix_of_a_header_is_rejected_not_panicking() {
        let json = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}"#;
        let p = Path::new("t.safetensors");
        assert_eq!(parse_header(json, 8, p).unwrap().bytes, 8);
        for cut in 0..json.len() {
            assert!(parse_header(&json[..cut], 8, p).is_err(), "prefix {cut}");
        }
    }

    #[test]
    fn index_total_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors.index.json");
        std::fs::write(
            &p,
            r#"{"metadata":{"total_size":16060522496},"weight_map":{}}"#,
        )
        .unwrap();
        assert_eq!(
            weights_in_dir(dir.path()).unwrap().unwrap().bytes,
            16_060_522_496
        );
        std::fs::write(&p, r#"{"metadata":{}}"#).unwrap();
        assert!(weights_in_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("total_size"));
    }
}

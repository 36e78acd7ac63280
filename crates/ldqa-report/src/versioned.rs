//! Reading a JSON file that carries its own version key (`schema_version` for a
//! [`RunResult`](crate::RunResult), `ab_schema_version` for an [`AbResult`](crate::AbResult)).
//!
//! The key is checked before the rest is deserialized, so that a newer or foreign file
//! fails with a clear message rather than a missing-field error.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::ReportError;

/// The largest result file read: a run of a million requests writes about 600 MB.
pub const MAX_RESULT_BYTES: u64 = 2 << 30;

/// The text of a result file, refusing at once what cannot be one (reliability review C5:
/// a 1 GiB file of NUL bytes was read whole, 1 GB of memory, before failing on its first
/// byte): a file whose first character is not `{`, or one larger than
/// [`MAX_RESULT_BYTES`].
pub(crate) fn read_result_text(path: &Path) -> Result<String, ReportError> {
    let io = |e| ReportError::io("read", path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 256];
    let n = file.read(&mut head).map_err(io)?;
    let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an ldqa result (a JSON object was expected)",
        )));
    }
    let mut bytes = head[..n].to_vec();
    (&mut file)
        .take(MAX_RESULT_BYTES + 1 - n as u64)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RESULT_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} GiB, more than any ldqa result",
                MAX_RESULT_BYTES >> 30
            ),
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Parses `text`, requiring `key` to hold exactly `supported`, then deserializes it as `T`.
pub(crate) fn from_versioned_json<T: DeserializeOwned>(
    text: &str,
    key: &'static str,
    supported: u32,
) -> Result<T, ReportError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    // A version that is there but not the one supported (another number, `1e21`, `"1"`)
    // is named as written: "no schema_version" would send the reader the wrong way
    // (reliability review C2).
    match value.get(key) {
        None => Err(ReportError::MissingSchemaVersion { key }),
        Some(v) if v.as_u64() == Some(u64::from(supported)) => Ok(serde_json::from_value(value)?),
        Some(v) => Err(ReportError::UnsupportedSchema {
            key,
            found: v.to_string(),
            supported,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        v: u32,
        x: u8,
    }

    #[test]
    fn what_cannot_be_a_result_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let nul = dir.path().join("nul.json");
        std::fs::write(&nul, vec![0u8; 1 << 20]).unwrap();
        let err = read_result_text(&nul).unwrap_err();
        let reason = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            reason.as_deref(),
            Some("not an ldqa result (a JSON object was expected)"),
            "{err}"
        );
        let ok = dir.path().join("ok.json");
        std::fs::write(&ok, "  {\"schema_version\": 1}").unwrap();
        assert_eq!(read_result_text(&ok).unwrap(), "  {\"schema_version\": 1}");
    }

    #[test]
    fn the_version_key_is_checked_before_the_fields() {
        let doc: Doc = from_versioned_json(r#"{"v": 3, "x": 7}"#, "v", 3).unwrap();
        assert_eq!((doc.v, doc.x), (3, 7));
        let err = from_versioned_json::<Doc>(r#"{"v": 4}"#, "v", 3).unwrap_err();
        assert_eq!(err.to_string(), "result file has v 4; this ldqa reads v 3");
        let err = from_versioned_json::<Doc>(r#"{"v": 1e21}"#, "v", 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "result file has v 1e+21; this ldqa reads v 3"
        );
        let err = from_versioned_json::<Doc>(r#"{"v": "3"}"#, "v", 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "result file has v \"3\"; this ldqa reads v 3"
        );
        let err = from_versioned_json::<Doc>(r#"{"x": 7}"#, "v", 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "result file has no v: is it an ldqa result?"
        );
    }
}

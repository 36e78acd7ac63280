//! Reading a JSON file that carries its own version key (`schema_version` for a
//! [`RunResult`](crate::RunResult), `ab_schema_version` for an [`AbResult`](crate::AbResult)).
//!
//! The key is checked before the rest is deserialized, so that a newer or foreign file
//! fails with a clear message rather than a missing-field error.

use serde::de::DeserializeOwned;

use crate::ReportError;

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

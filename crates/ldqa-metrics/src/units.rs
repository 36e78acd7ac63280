//! Unit conversions at the edges, and serde adapters that write nanosecond fields as seconds.
//!
//! Inside the code times are nanoseconds (`u64`, or `f64` for derived means); JSON carries
//! seconds with `_s` in the key. Use the adapters with `#[serde(rename = "x_s", with = "…")]`.

pub use ldqa_model::{ns_to_s, NS_PER_S};

/// Seconds to whole nanoseconds (rounded; negative and NaN become 0, huge values saturate).
pub fn s_to_ns_u64(s: f64) -> u64 {
    // `as` saturates for floats out of range and maps NaN to 0.
    (s * NS_PER_S).round() as u64
}

/// `u64` nanoseconds ⇄ JSON seconds.
pub mod ns_as_s {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes nanoseconds as seconds.
    pub fn serialize<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::ns_to_s(*ns))
    }

    /// Reads seconds as whole nanoseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(super::s_to_ns_u64(f64::deserialize(d)?))
    }
}

/// `Option<f64>` nanoseconds ⇄ JSON seconds or `null`.
pub mod opt_f64_ns_as_s {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes nanoseconds as seconds; `None` and non-finite values as `null`.
    pub fn serialize<S: Serializer>(ns: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match ns {
            Some(v) if v.is_finite() => s.serialize_f64(v / super::NS_PER_S),
            _ => s.serialize_none(),
        }
    }

    /// Reads seconds (or `null`) as nanoseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|v| v * super::NS_PER_S))
    }
}

/// `Option<f64>` that may be `+∞` ⇄ JSON number, the string `"inf"`, or `null`.
///
/// JSON has no infinity and `serde_json` would silently write `null`; a gain of ∞ (query
/// TTFT of zero) is meaningful, so it is spelled out.
pub mod opt_ratio {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    /// Writes a finite ratio as a number, `+∞` as `"inf"`, anything else as `null`.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.is_finite() => s.serialize_f64(*x),
            Some(x) if *x == f64::INFINITY => s.serialize_str("inf"),
            _ => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }

    /// Reads a number, `"inf"` or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None => Ok(None),
            Some(Repr::Num(x)) => Ok(Some(x)),
            Some(Repr::Str(s)) if s == "inf" => Ok(Some(f64::INFINITY)),
            Some(Repr::Str(s)) => Err(D::Error::custom(format!(
                "expected a number, \"inf\" or null, got {s:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_to_ns() {
        assert_eq!(s_to_ns_u64(0.751), 751_000_000);
        assert_eq!(s_to_ns_u64(-1.0), 0);
        assert_eq!(s_to_ns_u64(f64::NAN), 0);
        assert_eq!(s_to_ns_u64(ns_to_s(123_456_789_012)), 123_456_789_012);
    }
}

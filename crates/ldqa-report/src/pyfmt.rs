//! Python's float formatting, so that lines and files match upstream's byte for byte.
//!
//! - [`fixed`]: `f"{x:.{p}f}"`. Rust's `{:.p}` rounds the same way (exact decimal expansion
//!   of the binary value, ties to even); only NaN/∞ differ (`nan`, `inf`, `-inf` in Python).
//! - [`repr`]: `repr(x)` (what pandas' `to_csv` and `json.dumps` write): the shortest
//!   round-trip digits, scientific when the decimal exponent is < −4 or ≥ 16
//!   (CPython `float_repr_style = 'short'`, `Python/pystrtod.c`), always with a `.0` or an
//!   exponent so that it reads back as a float.

/// `f"{x:.{precision}f}"`.
pub fn fixed(x: f64, precision: usize) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{x:.precision$}")
    }
}

/// `repr(x)` for a Python float.
pub fn repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde±x`.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("invariant: {:e} has an exponent");
    let exp: i32 = exp.parse().expect("invariant: {:e} exponent is an integer");
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// A float as Python's `json.dumps` writes it (`NaN`, `Infinity`, `-Infinity` for non-finite).
pub fn json_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        repr(x)
    }
}

/// A Python bool as pandas writes it.
pub fn bool_str(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_like_python() {
        // Values checked with CPython 3: f"{x:.3f}".
        assert_eq!(fixed(0.751_234, 3), "0.751");
        assert_eq!(fixed(0.0625, 3), "0.062");
        assert_eq!(fixed(24.9155, 3), "24.916");
        assert_eq!(fixed(f64::NAN, 3), "nan");
        assert_eq!(fixed(f64::INFINITY, 2), "inf");
        assert_eq!(fixed(-0.0, 3), "-0.000");
    }

    #[test]
    fn repr_like_python() {
        // Values checked with CPython 3: repr(x).
        assert_eq!(repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(repr(1.0), "1.0");
        assert_eq!(repr(-1.0), "-1.0");
        assert_eq!(repr(0.0), "0.0");
        assert_eq!(repr(0.0001), "0.0001");
        assert_eq!(repr(0.00001), "1e-05");
        assert_eq!(repr(1.5e-7), "1.5e-07");
        assert_eq!(repr(1e15), "1000000000000000.0");
        assert_eq!(repr(1e16), "1e+16");
        assert_eq!(repr(123456.789), "123456.789");
        assert_eq!(repr(2.5e100), "2.5e+100");
        assert_eq!(json_float(f64::NAN), "NaN");
        assert_eq!(json_float(f64::NEG_INFINITY), "-Infinity");
    }
}

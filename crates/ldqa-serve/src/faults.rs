//! Fault injection (`ldqa serve --fault-rate P --faults KINDS`): per request, seeded.
//!
//! Every generation request (`/v1/completions`, `/v1/chat/completions`) gets an index in
//! arrival order, 0, 1, 2, …; [`decide`] turns `(seed, index)` into "no fault" with
//! probability 1 − P or one of the configured kinds, chosen uniformly. The decision is a
//! pure function of the seed and the index (independent across requests), so a log of
//! `(index, kind)` pairs is reproducible given the arrival order.
//!
//! What a client sees for each kind:
//!
//! | kind | what the server does | a client sees | reaches the engine |
//! |---|---|---|---|
//! | `http500` | answers 500 with an OpenAI-style error body | HTTP status 500 | no |
//! | `http429` | answers 429 (`RateLimitError`, `Retry-After: 1`) | HTTP status 429 | no |
//! | `drop` | reads the request, then closes the TCP connection without writing a byte ([`crate::conn`]) | the connection closes before any response header (hyper: "connection closed before message completed") | no |
//! | `disconnect` | streams the first token, then aborts the body: the connection closes without the final chunk | a 200 stream cut short, no `[DONE]` | yes, aborted (blocks freed) |
//! | `stall` | sends 200 and SSE headers, then nothing for [`FaultConfig::stall`], then closes | headers, then silence: a client timeout | no |
//! | `malformed` | streams the first token, then an event whose data is truncated JSON, then ends the stream | a malformed event | yes, aborted |
//! | `error_event` | streams the first token, then an `{"error": …}` event and `[DONE]` | an error event | yes, aborted |
//! | `slow_first_byte` | waits [`FaultConfig::slow_first_byte`] before handling the request, then serves it normally | a late first byte, then success | yes, normally |
//!
//! Non-streamed requests: `disconnect` closes the connection after the engine finished,
//! `stall` sends nothing for the stall time and then closes, `malformed` answers 200 with a
//! truncated JSON body, `error_event` answers 500.
//!
//! Each injected fault is logged (one JSON line `{"request_index":N,"kind":"…"}` to
//! [`FaultConfig::log`], or one line to stderr) and counted in `/metrics` as
//! `ldqa:injected_faults_total{kind="…"}`.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::ServeError;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `http500`: a 500 with an OpenAI-style error body.
    Http500,
    /// `http429`: a 429 `RateLimitError` with `Retry-After: 1`.
    Http429,
    /// `drop`: the connection closes before any response byte.
    Drop,
    /// `disconnect`: the stream is cut after its first token, without `[DONE]`.
    Disconnect,
    /// `stall`: headers, then silence for [`FaultConfig::stall`], then the connection closes.
    Stall,
    /// `malformed`: the first token, then an event of truncated JSON.
    Malformed,
    /// `error_event`: the first token, then an `{"error": …}` event and `[DONE]`.
    ErrorEvent,
    /// `slow_first_byte`: served normally after [`FaultConfig::slow_first_byte`].
    SlowFirstByte,
}

impl FaultKind {
    /// Every kind, in the order `/metrics` lists them.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Http500,
        FaultKind::Http429,
        FaultKind::Drop,
        FaultKind::Disconnect,
        FaultKind::Stall,
        FaultKind::Malformed,
        FaultKind::ErrorEvent,
        FaultKind::SlowFirstByte,
    ];

    /// The name used on the command line, in logs and in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Http500 => "http500",
            FaultKind::Http429 => "http429",
            FaultKind::Drop => "drop",
            FaultKind::Disconnect => "disconnect",
            FaultKind::Stall => "stall",
            FaultKind::Malformed => "malformed",
            FaultKind::ErrorEvent => "error_event",
            FaultKind::SlowFirstByte => "slow_first_byte",
        }
    }

    /// Position in [`FaultKind::ALL`].
    pub fn index(self) -> usize {
        FaultKind::ALL
            .iter()
            .position(|&k| k == self)
            .expect("invariant: ALL lists every kind")
    }

    /// Whether this kind lets the request reach the engine.
    pub fn reaches_engine(self) -> bool {
        matches!(
            self,
            FaultKind::Disconnect
                | FaultKind::Malformed
                | FaultKind::ErrorEvent
                | FaultKind::SlowFirstByte
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                ServeError::Faults(format!(
                    "unknown fault kind `{s}` (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// Parses a comma-separated list of kinds (`all` means every kind).
pub fn parse_kinds(list: &str) -> Result<Vec<FaultKind>, ServeError> {
    if list.trim() == "all" {
        return Ok(FaultKind::ALL.to_vec());
    }
    let mut kinds = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let k: FaultKind = part.parse()?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Ok(kinds)
}

/// `--fault-*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Probability that a request gets a fault, 0..=1.
    pub rate: f64,
    /// The kinds to choose from (uniformly).
    pub kinds: Vec<FaultKind>,
    /// Seed of the per-request decisions (same seed and arrival order, same faults).
    pub seed: u64,
    /// How long a `stall` keeps the stream silent (default 30 s).
    pub stall: Duration,
    /// How long a `slow_first_byte` waits before handling the request (default 500 ms).
    pub slow_first_byte: Duration,
    /// JSONL log of injected faults; stderr when `None`.
    pub log: Option<PathBuf>,
}

impl FaultConfig {
    /// Every kind at `rate`, seed 0, default delays, logged to stderr.
    pub fn new(rate: f64, kinds: Vec<FaultKind>) -> Self {
        FaultConfig {
            rate,
            kinds,
            seed: 0,
            stall: Duration::from_secs(30),
            slow_first_byte: Duration::from_millis(500),
            log: None,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ServeError> {
        if !(self.rate.is_finite() && (0.0..=1.0).contains(&self.rate)) {
            return Err(ServeError::Faults(format!(
                "--fault-rate must be between 0 and 1, not {}",
                self.rate
            )));
        }
        if self.rate > 0.0 && self.kinds.is_empty() {
            return Err(ServeError::Faults(
                "--fault-rate needs at least one kind in --faults".into(),
            ));
        }
        Ok(())
    }
}

/// SplitMix64's output function (Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014; constants as in Vigna's splitmix64.c).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fault (if any) of request `index`: with probability `rate`, a kind chosen
/// uniformly from `kinds`. A pure function of its arguments.
pub fn decide(seed: u64, index: u64, rate: f64, kinds: &[FaultKind]) -> Option<FaultKind> {
    if kinds.is_empty() || rate <= 0.0 {
        return None;
    }
    let a = splitmix64(seed ^ splitmix64(index));
    // 53 random bits → uniform in [0, 1).
    let u = (a >> 11) as f64 / (1u64 << 53) as f64;
    if u >= rate {
        return None;
    }
    // Lemire's multiply-shift maps a u64 onto 0..len without a modulo.
    let b = splitmix64(a);
    let i = ((u128::from(b) * kinds.len() as u128) >> 64) as usize;
    Some(kinds[i])
}

/// Draws, logs and counts faults for the server.
#[derive(Debug)]
pub(crate) struct Injector {
    pub config: FaultConfig,
    next_index: AtomicU64,
    log: Option<Mutex<std::fs::File>>,
}

impl Injector {
    pub(crate) fn new(config: FaultConfig) -> Result<Self, ServeError> {
        config.validate()?;
        let log = match &config.log {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        ServeError::Faults(format!("--fault-log {}: {e}", path.display()))
                    })?,
            )),
            None => None,
        };
        Ok(Injector {
            config,
            next_index: AtomicU64::new(0),
            log,
        })
    }

    /// Gives the next request its index and fault; logs the fault.
    pub(crate) fn draw(&self) -> Option<FaultKind> {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let kind = decide(
            self.config.seed,
            index,
            self.config.rate,
            &self.config.kinds,
        )?;
        match &self.log {
            Some(file) => {
                let line = format!("{{\"request_index\":{index},\"kind\":\"{kind}\"}}\n");
                if let Ok(mut f) = file.lock() {
                    // One write per line: a reader never sees half a line.
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => eprintln!("ldqa serve: injected fault request_index={index} kind={kind}"),
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for k in FaultKind::ALL {
            assert_eq!(k.as_str().parse::<FaultKind>().unwrap(), k);
            assert_eq!(FaultKind::ALL[k.index()], k);
        }
        assert_eq!(parse_kinds("all").unwrap(), FaultKind::ALL.to_vec());
        assert_eq!(
            parse_kinds("drop, stall,drop").unwrap(),
            vec![FaultKind::Drop, FaultKind::Stall]
        );
        assert!(parse_kinds("drop,nope").is_err());
    }

    #[test]
    fn validate_refuses_bad_rates() {
        assert!(FaultConfig::new(1.5, vec![FaultKind::Drop])
            .validate()
            .is_err());
        assert!(FaultConfig::new(f64::NAN, vec![FaultKind::Drop])
            .validate()
            .is_err());
        assert!(FaultConfig::new(0.1, vec![]).validate().is_err());
        assert!(FaultConfig::new(0.0, vec![]).validate().is_ok());
    }

    #[test]
    fn decisions_are_seeded_and_near_the_rate() {
        let kinds = FaultKind::ALL;
        let n = 100_000u64;
        let mut per_kind = [0u64; 8];
        for i in 0..n {
            assert_eq!(decide(7, i, 0.1, &kinds), decide(7, i, 0.1, &kinds));
            if let Some(k) = decide(7, i, 0.1, &kinds) {
                per_kind[k.index()] += 1;
            }
        }
        let total: u64 = per_kind.iter().sum();
        // Binomial(100000, 0.1): sd ≈ 95, so ±600 is over 6 sd.
        assert!((9_400..=10_600).contains(&total), "{total}");
        // Each kind: Binomial(100000, 0.0125), sd ≈ 35; ±250 is over 7 sd.
        for c in per_kind {
            assert!((1_000..=1_500).contains(&c), "{per_kind:?}");
        }
        let other: Vec<_> = (0..50).map(|i| decide(8, i, 0.5, &kinds)).collect();
        let same: Vec<_> = (0..50).map(|i| decide(7, i, 0.5, &kinds)).collect();
        assert_ne!(other, same, "the seed changes the decisions");
        assert!((0..1000).all(|i| decide(7, i, 0.0, &kinds).is_none()));
        assert!((0..1000).all(|i| decide(7, i, 1.0, &kinds).is_some()));
    }
}

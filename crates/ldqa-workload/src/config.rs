//! User-facing workload settings: [`WorkloadConfig`] and the values of its flags.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::WorkloadError;

/// Order of the query round (`--repeat-mode`), as in upstream's `repeat_prompts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepeatMode {
    /// `docs * repeat_count`, then Python's `random.shuffle` (upstream's default).
    #[default]
    Random,
    /// `docs * repeat_count`: `[1, 2, 3] -> [1, 2, 3, 1, 2, 3]`.
    Tile,
    /// Each document `repeat_count` times in a row: `[1, 2, 3] -> [1, 1, 2, 2, 3, 3]`.
    Interleave,
}

impl RepeatMode {
    /// Every mode, in the order of [`RepeatMode::VALUE_NAMES`].
    pub const ALL: [RepeatMode; 3] = [RepeatMode::Random, RepeatMode::Tile, RepeatMode::Interleave];
    /// The accepted flag values, e.g. for clap's `PossibleValuesParser`.
    pub const VALUE_NAMES: [&'static str; 3] = ["random", "tile", "interleave"];

    /// The flag value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            RepeatMode::Random => "random",
            RepeatMode::Tile => "tile",
            RepeatMode::Interleave => "interleave",
        }
    }
}

impl fmt::Display for RepeatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RepeatMode {
    type Err = WorkloadError;

    /// Exact, case-sensitive names, like upstream's `mode == "random"` comparisons.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| WorkloadError::UnknownRepeatMode {
                value: s.to_owned(),
            })
    }
}

/// `--hit-miss-ratio H:M`: in the query round, position `i` is a forced miss when
/// `i % (H + M) >= H` (upstream's `add_cache_misses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HitMissRatio {
    hits: u32,
    misses: u32,
}

impl HitMissRatio {
    /// `hits:misses`; both 0 is rejected (no period).
    pub fn new(hits: u32, misses: u32) -> Result<Self, WorkloadError> {
        if hits == 0 && misses == 0 {
            return Err(WorkloadError::InvalidHitMissRatio {
                value: format!("{hits}:{misses}"),
                reason: "hits and misses cannot both be 0",
            });
        }
        Ok(HitMissRatio { hits, misses })
    }

    /// Hits per period.
    pub fn hits(self) -> u32 {
        self.hits
    }

    /// Misses per period.
    pub fn misses(self) -> u32 {
        self.misses
    }

    /// Whether query position `position` (0-based) is a forced miss.
    pub fn is_miss(self, position: usize) -> bool {
        let period = u64::from(self.hits) + u64::from(self.misses);
        (position as u64) % period >= u64::from(self.hits)
    }
}

impl fmt::Display for HitMissRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.hits, self.misses)
    }
}

impl FromStr for HitMissRatio {
    type Err = WorkloadError;

    /// `"3:1"`. Like Python's `int()`, each side may carry surrounding spaces and a `+`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| WorkloadError::InvalidHitMissRatio {
            value: s.to_owned(),
            reason,
        };
        let (h, m) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        if m.contains(':') {
            return Err(bad("expected exactly one ':'"));
        }
        let part = |p: &str| -> Result<u32, WorkloadError> {
            let p = p.trim();
            let digits = p.strip_prefix('+').unwrap_or(p);
            if p.starts_with('-') {
                return Err(bad("counts cannot be negative"));
            }
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("counts must be whole numbers"));
            }
            digits.parse().map_err(|_| bad("count too large"))
        };
        let (hits, misses) = (part(h)?, part(m)?);
        HitMissRatio::new(hits, misses).map_err(|_| bad("hits and misses cannot both be 0"))
    }
}

impl Serialize for HitMissRatio {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HitMissRatio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What documents are made of (`--text-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextSource {
    /// Upstream's documents: `"{i}"` followed by `" hi"` repeated. Never stored.
    #[default]
    Hi,
    /// Realistic text: random non-special token ids of the tokenizer, decoded, seeded by
    /// `--shuffle-seed`. Needs `--tokenizer`. These documents are stored in memory.
    Random,
}

impl TextSource {
    /// The accepted flag values.
    pub const VALUE_NAMES: [&'static str; 2] = ["hi", "random"];

    /// The flag value naming this source.
    pub fn as_str(self) -> &'static str {
        match self {
            TextSource::Hi => "hi",
            TextSource::Random => "random",
        }
    }
}

impl fmt::Display for TextSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TextSource {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hi" => Ok(TextSource::Hi),
            "random" => Ok(TextSource::Random),
            _ => Err(WorkloadError::UnknownTextSource {
                value: s.to_owned(),
            }),
        }
    }
}

/// Everything that decides the requests of a Long Doc QA run. Defaults are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// `--num-documents` (default 8).
    pub num_documents: usize,
    /// `--document-length` (default 20000): `"hi"` words per document without a
    /// tokenizer (upstream's meaning), exact tokens per document with one.
    pub document_length: usize,
    /// `--repeat-count` (default 2): times each document appears in the query round.
    pub repeat_count: usize,
    /// `--repeat-mode` (default random).
    pub repeat_mode: RepeatMode,
    /// `--shuffle-seed` (default 0): seeds Python's `random` exactly as upstream does,
    /// and the random-text generator.
    pub shuffle_seed: i64,
    /// `--hit-miss-ratio` (default none: every query may hit).
    pub hit_miss: Option<HitMissRatio>,
    /// `--text-source` (default hi).
    pub text: TextSource,
    /// `--tokenizer`: a tokenizer.json file, or a directory holding one.
    pub tokenizer: Option<PathBuf>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            num_documents: 8,
            document_length: 20_000,
            repeat_count: 2,
            repeat_mode: RepeatMode::Random,
            shuffle_seed: 0,
            hit_miss: None,
            text: TextSource::Hi,
            tokenizer: None,
        }
    }
}

impl WorkloadConfig {
    /// Checks the values alone (no file access). Returns the first problem found.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.num_documents == 0 {
            return Err(WorkloadError::ZeroDocuments);
        }
        if self.document_length == 0 {
            return Err(WorkloadError::ZeroDocumentLength);
        }
        if self.repeat_count == 0 {
            return Err(WorkloadError::ZeroRepeatCount);
        }
        if self
            .num_documents
            .checked_mul(self.repeat_count)
            .is_none_or(|n| n > isize::MAX as usize / 64)
        {
            return Err(WorkloadError::PlanTooLarge {
                num_documents: self.num_documents,
                repeat_count: self.repeat_count,
            });
        }
        if self.text == TextSource::Random && self.tokenizer.is_none() {
            return Err(WorkloadError::RandomTextNeedsTokenizer);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_ratio_parsing() {
        let ok = |s: &str| s.parse::<HitMissRatio>().unwrap();
        // Usability finding 32: a third count is named as such.
        let three = "2:2:2".parse::<HitMissRatio>().unwrap_err().to_string();
        assert!(three.contains("exactly one ':'"), "{three}");
        assert_eq!(ok("3:1"), HitMissRatio::new(3, 1).unwrap());
        assert_eq!(ok("0:1").to_string(), "0:1");
        assert_eq!(ok("1:0").to_string(), "1:0");
        assert_eq!(ok(" 2 : +2 ").to_string(), "2:2");
        for bad in [
            "0:0",
            "3:x",
            "3",
            "-1:2",
            "1:-2",
            "1:2:3",
            ":1",
            "1:",
            "",
            "1.5:1",
            "99999999999:1",
        ] {
            let err = bad.parse::<HitMissRatio>().unwrap_err();
            assert_eq!(err.flag(), "--hit-miss-ratio", "{bad}");
            assert!(
                err.to_string().starts_with("--hit-miss-ratio"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn hit_miss_positions() {
        let r: HitMissRatio = "3:1".parse().unwrap();
        let misses: Vec<bool> = (0..8).map(|i| r.is_miss(i)).collect();
        assert_eq!(
            misses,
            [false, false, false, true, false, false, false, true]
        );
        let all_miss: HitMissRatio = "0:1".parse().unwrap();
        assert!((0..5).all(|i| all_miss.is_miss(i)));
        let all_hit: HitMissRatio = "1:0".parse().unwrap();
        assert!((0..5).all(|i| !all_hit.is_miss(i)));
        let big = HitMissRatio::new(u32::MAX, u32::MAX).unwrap();
        assert!(!big.is_miss(5) && big.is_miss(u32::MAX as usize));
    }

    #[test]
    fn repeat_mode_names_round_trip() {
        for (m, name) in RepeatMode::ALL.iter().zip(RepeatMode::VALUE_NAMES) {
            assert_eq!(m.to_string(), name);
            assert_eq!(name.parse::<RepeatMode>().unwrap(), *m);
        }
        let err = "Random".parse::<RepeatMode>().unwrap_err();
        assert_eq!(err.flag(), "--repeat-mode");
        assert!("shuffle".parse::<RepeatMode>().is_err());
        assert_eq!("random".parse::<TextSource>().unwrap(), TextSource::Random);
        assert_eq!(
            "words".parse::<TextSource>().unwrap_err().flag(),
            "--text-source"
        );
    }

    #[test]
    fn validate_names_the_flag() {
        let base = WorkloadConfig::default();
        assert!(base.validate().is_ok());
        let cases = [
            (
                WorkloadConfig {
                    num_documents: 0,
                    ..base.clone()
                },
                "--num-documents",
            ),
            (
                WorkloadConfig {
                    document_length: 0,
                    ..base.clone()
                },
                "--document-length",
            ),
            (
                WorkloadConfig {
                    repeat_count: 0,
                    ..base.clone()
                },
                "--repeat-count",
            ),
            (
                WorkloadConfig {
                    repeat_count: usize::MAX,
                    ..base.clone()
                },
                "--num-documents",
            ),
            (
                WorkloadConfig {
                    text: TextSource::Random,
                    ..base.clone()
                },
                "--text-source",
            ),
        ];
        for (cfg, flag) in cases {
            let err = cfg.validate().unwrap_err();
            assert_eq!(err.flag(), flag);
            assert!(err.to_string().contains(flag), "{err}");
        }
    }

    #[test]
    fn config_serde_round_trip() {
        let cfg = WorkloadConfig {
            hit_miss: Some("3:1".parse().unwrap()),
            ..Default::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains("\"hit_miss\":\"3:1\"") && json.contains("\"repeat_mode\":\"random\"")
        );
        assert_eq!(serde_json::from_str::<WorkloadConfig>(&json).unwrap(), cfg);
    }
}

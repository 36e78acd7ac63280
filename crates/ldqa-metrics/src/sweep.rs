//! A sweep's points (one workload along one axis, usually the working set, on vLLM and on
//! vLLM + LMCache) and where LMCache starts and stops paying off ([`Crossovers`]).

use std::fmt;

use ldqa_model::{PrefixSource, RequestRecord, RoundKind, RoundRecord};
use serde::{Deserialize, Serialize};

use crate::Stats;

/// LMCache "wins" at a point when vLLM's query-round mean TTFT is at least this many times
/// LMCache's (10 % better: less is within what a change of a few milliseconds moves).
pub const WIN_FACTOR: f64 = 1.1;

/// Reads a number that JSON wrote as `null` because it was NaN (nothing to measure).
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One round of one arm at one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundPoint {
    /// Mean time to first token, seconds.
    #[serde(deserialize_with = "nan_from_null")]
    pub mean_ttft_s: f64,
    /// 90th percentile of the time to first token, seconds.
    #[serde(deserialize_with = "nan_from_null")]
    pub p90_ttft_s: f64,
    /// Round time, seconds.
    #[serde(deserialize_with = "nan_from_null")]
    pub round_time_s: f64,
    /// Where its prompt tokens came from.
    pub prefix: PrefixSource,
    /// Prompt tokens a server's usage reported cached without saying from which tier:
    /// vLLM + LMCache counts the hits of its prefix cache and of LMCache's alike. Counted
    /// here, not in `prefix`, for an arm with a second tier measured on a server.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tier_unknown_tokens: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl RoundPoint {
    /// The summary of `round`. Where the records do not say where their prompt tokens came
    /// from (a server's), the usage's cached tokens are GPU prefix-cache hits when
    /// `cached_is_gpu` (vLLM alone), else of an unknown tier.
    pub fn of(round: &RoundRecord, cached_is_gpu: bool) -> RoundPoint {
        let ttfts: Vec<u64> = round.requests.iter().filter_map(|r| r.ttft_ns()).collect();
        let stats = Stats::from_ns(&ttfts);
        let mut prefix = PrefixSource::default();
        let mut unknown = 0;
        for r in &round.requests {
            if let Some(p) = r.prefix {
                prefix.gpu_hit_tokens += p.gpu_hit_tokens;
                prefix.cpu_hit_tokens += p.cpu_hit_tokens;
                prefix.computed_tokens += p.computed_tokens;
            } else if let Some(u) = r.usage {
                let cached = u.cached_tokens.unwrap_or(0);
                match cached_is_gpu {
                    true => prefix.gpu_hit_tokens += cached,
                    false => unknown += cached,
                }
                prefix.computed_tokens += u.prompt_tokens.unwrap_or(0).saturating_sub(cached);
            }
        }
        RoundPoint {
            mean_ttft_s: stats.as_ref().map_or(f64::NAN, Stats::mean_s),
            p90_ttft_s: stats.as_ref().map_or(f64::NAN, Stats::p90_s),
            round_time_s: round.duration_ns as f64 / 1e9,
            prefix,
            cached_tier_unknown_tokens: unknown,
        }
    }

    /// Prompt tokens that came from a cache, whichever tier.
    pub fn cached_tokens(&self) -> u64 {
        self.prefix.gpu_hit_tokens + self.prefix.cpu_hit_tokens + self.cached_tier_unknown_tokens
    }

    /// Every prompt token.
    pub fn prompt_tokens(&self) -> u64 {
        self.cached_tokens() + self.prefix.computed_tokens
    }
}

/// One arm (engine) at one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmPoint {
    /// The warmup round (every document once).
    pub warmup: RoundPoint,
    /// The query round (the documents again).
    pub query: RoundPoint,
}

impl ArmPoint {
    /// The warmup and query rounds of `rounds`; `None` when either is missing. See
    /// [`RoundPoint::of`] for `cached_is_gpu`.
    pub fn of(rounds: &[RoundRecord], cached_is_gpu: bool) -> Option<ArmPoint> {
        let find = |kind| {
            rounds
                .iter()
                .find(|r| r.kind == kind)
                .map(|r| RoundPoint::of(r, cached_is_gpu))
        };
        Some(ArmPoint {
            warmup: find(RoundKind::Warmup)?,
            query: find(RoundKind::Query)?,
        })
    }

    /// Warmup over query mean TTFT: what reuse gained this arm.
    pub fn query_gain(&self) -> f64 {
        self.warmup.mean_ttft_s / self.query.mean_ttft_s
    }

    /// The share of the query round's prompt tokens that came from a cache.
    pub fn query_hit_fraction(&self) -> f64 {
        self.query.cached_tokens() as f64 / self.query.prompt_tokens().max(1) as f64
    }
}

/// A value of a swept axis: a count, a size, or a name (a GPU, a model, a hit:miss ratio).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AxisValue {
    /// A whole number (documents, tokens, requests, GPUs).
    Whole(u64),
    /// A real number (GiB).
    Real(f64),
    /// A name.
    Name(String),
}

impl fmt::Display for AxisValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AxisValue::Whole(v) => write!(f, "{v}"),
            AxisValue::Real(v) => write!(f, "{v}"),
            AxisValue::Name(v) => f.write_str(v),
        }
    }
}

/// The axis a sweep runs along, as its flag names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptAxis {
    /// The flag, e.g. `--num-documents`.
    pub flag: String,
}

impl SweptAxis {
    /// The working set: `--num-documents`.
    pub fn working_set() -> SweptAxis {
        SweptAxis {
            flag: "--num-documents".into(),
        }
    }

    /// Whether this is the working set (the axis the capacities are measured along).
    pub fn is_working_set(&self) -> bool {
        self.flag == "--num-documents"
    }

    /// `v` in words: "42 documents", or "--gpu h200".
    pub fn phrase(&self, v: &AxisValue) -> String {
        if self.is_working_set() {
            format!("{v} documents")
        } else {
            format!("{} {v}", self.flag)
        }
    }
}

/// What the engines can hold at a point, in tokens and in documents of its length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacities {
    /// Prompt tokens per document (the document and its chat template).
    pub tokens_per_document: u64,
    /// vLLM's GPU prefix cache.
    pub gpu_kv_tokens: u64,
    /// LMCache's CPU tier.
    pub cpu_tier_tokens: u64,
    /// Instances, each with these caches (a simulated cluster; 1: one engine alone).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub instances: u32,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

impl Capacities {
    /// Whole documents the GPU cache holds.
    pub fn gpu_documents(&self) -> u64 {
        self.gpu_kv_tokens / self.tokens_per_document.max(1)
    }

    /// Whole documents the CPU tier holds.
    pub fn cpu_documents(&self) -> u64 {
        self.cpu_tier_tokens / self.tokens_per_document.max(1)
    }
}

/// Both arms at one point of a sweep (an arm not measured is `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The swept axis's value here (the plot's x).
    pub x: AxisValue,
    /// The second axis's value, when two are swept as a grid (one curve per value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<AxisValue>,
    /// Documents in the working set.
    pub num_documents: usize,
    /// Their prompt tokens, all together.
    pub working_set_tokens: u64,
    /// What the engines hold here.
    pub capacities: Capacities,
    /// vLLM alone.
    pub vllm: Option<ArmPoint>,
    /// vLLM + LMCache.
    pub lmcache: Option<ArmPoint>,
    /// Measured on servers with `--vllm-metrics-url`/`--lmcache-metrics-url`: each
    /// instance's own counters over each round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_counters: Vec<InstanceRound>,
    /// On several instances (a simulated cluster, or several servers given): each one's
    /// share of each round as the client saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_shares: Vec<InstanceShare>,
}

/// One instance's share of one round of one arm, as the client saw it: the requests it
/// answered, their TTFT and cached tokens, and those it failed or shed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceShare {
    /// `vllm` or `lmcache`.
    pub arm: String,
    /// `warmup` or `query`.
    pub round: String,
    /// `#1`, `#2`, … in the simulator; a server's base URL.
    pub instance: String,
    /// Requests sent to it.
    pub requests: u64,
    /// Of those, the ones that failed.
    pub failed: u64,
    /// Of the failed, those it shed (HTTP 429 or 503), as routers do near saturation.
    pub shed: u64,
    /// Mean time to first token of its successful requests, seconds.
    #[serde(deserialize_with = "nan_from_null")]
    pub mean_ttft_s: f64,
    /// Prompt tokens of its requests that came from a cache, whichever tier.
    pub cached_tokens: u64,
    /// Every prompt token of its requests.
    pub prompt_tokens: u64,
}

impl InstanceShare {
    /// The share of instance `instance` in round `round` of `arm`: `records`, the
    /// requests it was sent.
    pub fn of<'a>(
        arm: &str,
        round: RoundKind,
        instance: &str,
        records: impl Iterator<Item = &'a RequestRecord>,
    ) -> InstanceShare {
        let mut share = InstanceShare {
            arm: arm.to_owned(),
            round: round.as_str().to_owned(),
            instance: instance.to_owned(),
            requests: 0,
            failed: 0,
            shed: 0,
            mean_ttft_s: f64::NAN,
            cached_tokens: 0,
            prompt_tokens: 0,
        };
        let mut ttfts = Vec::new();
        for r in records {
            share.requests += 1;
            if let Some(f) = &r.failure {
                share.failed += 1;
                share.shed += u64::from(matches!(f.http_status, Some(429 | 503)));
                continue;
            }
            ttfts.extend(r.ttft_ns());
            let (cached, prompt) = match (r.prefix, r.usage) {
                (Some(p), _) => (
                    p.gpu_hit_tokens + p.cpu_hit_tokens,
                    p.gpu_hit_tokens + p.cpu_hit_tokens + p.computed_tokens,
                ),
                (None, Some(u)) => (u.cached_tokens.unwrap_or(0), u.prompt_tokens.unwrap_or(0)),
                (None, None) => (0, 0),
            };
            share.cached_tokens += cached;
            share.prompt_tokens += prompt;
        }
        share.mean_ttft_s = Stats::from_ns(&ttfts)
            .as_ref()
            .map_or(f64::NAN, Stats::mean_s);
        share
    }
}

/// The busiest instance's requests over the mean, of `shares` (one arm's one round):
/// 1 when even; `None` without shares.
pub fn load_imbalance<'a>(shares: impl Iterator<Item = &'a InstanceShare>) -> Option<f64> {
    let counts: Vec<u64> = shares.map(|s| s.requests).collect();
    let busiest = *counts.iter().max()?;
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    (mean > 0.0).then(|| busiest as f64 / mean)
}

/// One instance's counters over one round of one arm, read from its Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRound {
    /// `vllm` or `lmcache`.
    pub arm: String,
    /// `warmup` or `query`.
    pub round: String,
    /// Where its counters were read.
    pub metrics_url: String,
    /// Requests it finished.
    pub requests: Option<u64>,
    /// Prompt tokens its GPU prefix cache held.
    pub prefix_cache_hits_tokens: Option<u64>,
}

impl SweepPoint {
    fn both(&self) -> Option<(&ArmPoint, &ArmPoint)> {
        Some((self.vllm.as_ref()?, self.lmcache.as_ref()?))
    }

    /// vLLM's query mean TTFT over LMCache's: above 1, LMCache answers sooner.
    pub fn ttft_gain(&self) -> Option<f64> {
        self.both()
            .map(|(v, l)| v.query.mean_ttft_s / l.query.mean_ttft_s)
    }

    /// vLLM's query round time over LMCache's.
    pub fn round_gain(&self) -> Option<f64> {
        self.both()
            .map(|(v, l)| v.query.round_time_s / l.query.round_time_s)
    }

    /// What LMCache costs at this point: its largest relative increase of the mean TTFT
    /// over vLLM's, warmup or query (0 when it is never slower).
    pub fn ttft_cost(&self) -> Option<f64> {
        let rel = |lm: f64, v: f64| lm / v - 1.0;
        self.both().map(|(v, l)| {
            rel(l.warmup.mean_ttft_s, v.warmup.mean_ttft_s)
                .max(rel(l.query.mean_ttft_s, v.query.mean_ttft_s))
                .max(0.0)
        })
    }

    /// Whether LMCache wins here ([`WIN_FACTOR`]).
    pub fn lmcache_wins(&self) -> bool {
        self.ttft_gain().is_some_and(|g| g >= WIN_FACTOR)
    }
}

/// Where LMCache pays off along one curve of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossovers {
    /// The first point at which vLLM's query round takes less than half of its prompt
    /// tokens from its prefix cache: the GPU cache's cliff.
    pub vllm_cliff: Option<AxisValue>,
    /// The first and last points of the widest run of points where LMCache wins.
    pub wins: Option<(AxisValue, AxisValue)>,
    /// The largest query TTFT gain.
    #[serde(deserialize_with = "nan_from_null")]
    pub best_gain: f64,
    /// Where the best gain is.
    pub best_at: Option<AxisValue>,
    /// Below the winning run: the largest TTFT cost of LMCache (e.g. 0.12 = +12 %).
    pub cost_below: Option<f64>,
    /// Past the winning run: the largest gain left.
    pub gain_past: Option<f64>,
    /// All of it in one sentence.
    pub verdict: String,
}

impl Crossovers {
    /// Finds them in `points`: one curve, in the order of `axis`'s values.
    pub fn find(points: &[SweepPoint], axis: &SweptAxis) -> Crossovers {
        let vllm_cliff = points
            .iter()
            .find(|p| p.vllm.is_some_and(|v| v.query_hit_fraction() < 0.5))
            .map(|p| p.x.clone());
        if points.iter().any(|p| p.both().is_none()) {
            let verdict = match &vllm_cliff {
                Some(x) => format!(
                    "vLLM's query round stops hitting its prefix cache at {}: the working set outgrows the GPU cache there.",
                    axis.phrase(x)
                ),
                None => "vLLM's query round hits its prefix cache at every point.".to_string(),
            };
            return Crossovers {
                vllm_cliff,
                wins: None,
                best_gain: f64::NAN,
                best_at: None,
                cost_below: None,
                gain_past: None,
                verdict: format!("{verdict} (Only one engine was measured: no comparison.)"),
            };
        }
        let mut best: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < points.len() {
            if !points[i].lmcache_wins() {
                i += 1;
                continue;
            }
            let start = i;
            while i < points.len() && points[i].lmcache_wins() {
                i += 1;
            }
            if best.is_none_or(|(a, b)| i - start > b - a + 1) {
                best = Some((start, i - 1));
            }
        }
        let gain = |p: &SweepPoint| p.ttft_gain().unwrap_or(f64::NAN);
        let top = points.iter().max_by(|a, b| gain(a).total_cmp(&gain(b)));
        let best_gain = top.map_or(f64::NAN, gain);
        let best_at = top.map(|p| p.x.clone());
        let fold_max = |it: &mut dyn Iterator<Item = f64>| {
            it.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let (cost_below, gain_past) = match best {
            Some((a, b)) => (
                fold_max(&mut points[..a].iter().filter_map(SweepPoint::ttft_cost)),
                fold_max(&mut points[b + 1..].iter().filter_map(SweepPoint::ttft_gain)),
            ),
            None => (
                fold_max(&mut points.iter().filter_map(SweepPoint::ttft_cost)),
                None,
            ),
        };
        let wins = best.map(|(a, b)| (points[a].x.clone(), points[b].x.clone()));
        let verdict = Verdict {
            axis,
            first: points.first().map(|p| &p.x),
            wins: wins.as_ref(),
            best_gain,
            best_at: best_at.as_ref(),
            cost_below,
            gain_past,
        }
        .text();
        Crossovers {
            vllm_cliff,
            wins,
            best_gain,
            best_at,
            cost_below,
            gain_past,
            verdict,
        }
    }
}

/// What [`Crossovers::find`] found, to be put in words.
struct Verdict<'a> {
    axis: &'a SweptAxis,
    first: Option<&'a AxisValue>,
    wins: Option<&'a (AxisValue, AxisValue)>,
    best_gain: f64,
    best_at: Option<&'a AxisValue>,
    cost_below: Option<f64>,
    gain_past: Option<f64>,
}

impl Verdict<'_> {
    fn text(&self) -> String {
        let axis = self.axis;
        let at = self.best_at.map_or(String::new(), |x| axis.phrase(x));
        let best_gain = self.best_gain;
        let Some((from, to)) = self.wins else {
            let cost = self.cost_below.map_or(String::new(), |c| {
                format!("; it costs up to +{:.0} % TTFT", c * 100.0)
            });
            return format!(
                "No benefit expected: LMCache wins nowhere in this range (best query TTFT gain {best_gain:.2}× at {at}){cost}."
            );
        };
        let span = if from == to {
            format!("at {}", axis.phrase(from))
        } else if axis.is_working_set() {
            format!("from {from} to {to} documents")
        } else {
            format!("from {} to {to}", axis.phrase(from))
        };
        let mut text =
            format!("LMCache wins {span}, by up to {best_gain:.1}× in query TTFT (at {at})");
        if let Some(c) = self.cost_below {
            let first = self.first.map_or(String::new(), ToString::to_string);
            let pct = c * 100.0;
            text.push_str(&if axis.is_working_set() {
                format!("; from {first} to below {from} (the working set fits the GPU cache) it costs up to +{pct:.0} % TTFT")
            } else {
                format!("; before {} it costs up to +{pct:.0} % TTFT", axis.phrase(from))
            });
        }
        if let Some(g) = self.gain_past {
            text.push_str(&if axis.is_working_set() {
                format!("; past {to} the CPU tier overflows too and the gain falls to {g:.2}×")
            } else {
                format!("; after {} the gain falls to {g:.2}×", axis.phrase(to))
            });
        }
        text.push('.');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(n: u64) -> AxisValue {
        AxisValue::Whole(n)
    }

    fn round(ttft_s: f64) -> RoundPoint {
        RoundPoint {
            mean_ttft_s: ttft_s,
            p90_ttft_s: ttft_s,
            round_time_s: ttft_s * 10.0,
            prefix: PrefixSource::default(),
            cached_tier_unknown_tokens: 0,
        }
    }

    /// A point where the arms' (warmup, query) mean TTFTs are as given.
    fn point(n: usize, vllm: (f64, f64), lmcache: (f64, f64)) -> SweepPoint {
        let arm = |(w, q)| ArmPoint {
            warmup: round(w),
            query: round(q),
        };
        SweepPoint {
            x: AxisValue::Whole(n as u64),
            series: None,
            num_documents: n,
            working_set_tokens: n as u64 * 10_000,
            capacities: Capacities {
                tokens_per_document: 10_000,
                gpu_kv_tokens: 500_000,
                cpu_tier_tokens: 1_000_000,
                instances: 1,
            },
            vllm: Some(arm(vllm)),
            lmcache: Some(arm(lmcache)),
            instance_counters: Vec::new(),
            instance_shares: Vec::new(),
        }
    }

    #[test]
    fn the_three_regimes_in_words() {
        let points = [
            point(10, (0.75, 0.20), (0.84, 0.21)), // fits the GPU: a cost
            point(40, (0.75, 0.20), (0.83, 0.21)),
            point(60, (0.75, 0.75), (0.83, 0.21)), // past the GPU: LMCache wins
            point(100, (0.75, 0.75), (0.83, 0.25)),
            point(200, (0.75, 0.75), (0.83, 0.80)), // past both: no gain
        ];
        let c = Crossovers::find(&points, &SweptAxis::working_set());
        assert_eq!(c.wins, Some((whole(60), whole(100))));
        assert_eq!(c.best_at, Some(whole(60)));
        assert!((c.best_gain - 0.75 / 0.21).abs() < 1e-9);
        // The test rounds carry no prefix sources: nothing hit, a cliff at the first point.
        assert_eq!(c.vllm_cliff, Some(whole(10)));
        assert!((c.cost_below.unwrap() - 0.12).abs() < 1e-9);
        assert!(c.gain_past.unwrap() < 1.0);
        assert!(
            c.verdict
                .starts_with("LMCache wins from 60 to 100 documents, by up to 3.6×"),
            "{}",
            c.verdict
        );
        assert!(
            c.verdict.contains("it costs up to +12 % TTFT"),
            "{}",
            c.verdict
        );
        assert!(c.verdict.contains("past 100"), "{}", c.verdict);
    }

    #[test]
    fn nothing_won_says_no_benefit() {
        let c = Crossovers::find(
            &[point(10, (0.75, 0.20), (0.80, 0.21))],
            &SweptAxis::working_set(),
        );
        assert_eq!(c.wins, None);
        assert!(
            c.verdict.starts_with("No benefit expected"),
            "{}",
            c.verdict
        );
        assert!(c.verdict.contains("+7 %"), "{}", c.verdict);
    }

    #[test]
    fn one_arm_alone_gives_its_cliff() {
        let hits = |hit: u64| RoundPoint {
            prefix: PrefixSource {
                gpu_hit_tokens: hit,
                cpu_hit_tokens: 0,
                computed_tokens: 100 - hit,
            },
            ..round(0.1)
        };
        let only_vllm = |n, hit| SweepPoint {
            lmcache: None,
            vllm: Some(ArmPoint {
                warmup: hits(0),
                query: hits(hit),
            }),
            ..point(n, (0.1, 0.1), (0.1, 0.1))
        };
        let c = Crossovers::find(
            &[only_vllm(10, 99), only_vllm(20, 60), only_vllm(21, 10)],
            &SweptAxis::working_set(),
        );
        assert_eq!(c.vllm_cliff, Some(whole(21)));
        assert_eq!(c.wins, None);
        assert!(
            c.verdict.contains("stops hitting its prefix cache at 21"),
            "{}",
            c.verdict
        );
    }

    #[test]
    fn another_axis_is_named_by_its_flag() {
        let gpu = |name: &str, p: SweepPoint| SweepPoint {
            x: AxisValue::Name(name.into()),
            ..p
        };
        let points = [
            gpu("l40s", point(40, (0.75, 0.20), (0.84, 0.21))),
            gpu("h100-80gb", point(40, (0.75, 0.75), (0.83, 0.21))),
            gpu("h200", point(40, (0.75, 0.75), (0.83, 0.80))),
        ];
        let axis = SweptAxis {
            flag: "--gpu".into(),
        };
        let c = Crossovers::find(&points, &axis);
        assert_eq!(
            c.verdict,
            "LMCache wins at --gpu h100-80gb, by up to 3.6× in query TTFT (at --gpu h100-80gb); before --gpu h100-80gb it costs up to +12 % TTFT; after --gpu h100-80gb the gain falls to 0.94×."
        );
    }

    #[test]
    fn the_widest_winning_run_is_reported() {
        let win = ((0.75, 0.75), (0.8, 0.2));
        let lose = ((0.75, 0.75), (0.8, 0.8));
        let points = [
            point(1, win.0, win.1),
            point(2, lose.0, lose.1),
            point(3, win.0, win.1),
            point(4, win.0, win.1),
        ];
        assert_eq!(
            Crossovers::find(&points, &SweptAxis::working_set()).wins,
            Some((whole(3), whole(4)))
        );
    }
}

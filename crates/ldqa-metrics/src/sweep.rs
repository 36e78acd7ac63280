//! A sweep's points (one workload at several working sets, vLLM and vLLM + LMCache) and
//! where LMCache starts and stops paying off ([`Crossovers`]).

use ldqa_model::{PrefixSource, RoundKind, RoundRecord};
use serde::{Deserialize, Serialize};

use crate::Stats;

/// LMCache "wins" at a point when vLLM's query-round mean TTFT is at least this many times
/// LMCache's (10 % better: less is within what a change of a few milliseconds moves).
pub const WIN_FACTOR: f64 = 1.1;

/// One round of one arm at one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundPoint {
    /// Mean time to first token, seconds.
    pub mean_ttft_s: f64,
    /// 90th percentile of the time to first token, seconds.
    pub p90_ttft_s: f64,
    /// Round time, seconds.
    pub round_time_s: f64,
    /// Where its prompt tokens came from.
    pub prefix: PrefixSource,
}

impl RoundPoint {
    /// The summary of `round`.
    pub fn of(round: &RoundRecord) -> RoundPoint {
        let ttfts: Vec<u64> = round.requests.iter().filter_map(|r| r.ttft_ns()).collect();
        let stats = Stats::from_ns(&ttfts);
        let mut prefix = PrefixSource::default();
        for r in &round.requests {
            // The simulator knows where tokens came from; a server's usage says how many
            // were cached (vLLM counts its prefix cache's hits there).
            let p = r.prefix.or_else(|| {
                let u = r.usage?;
                let cached = u.cached_tokens.unwrap_or(0);
                Some(PrefixSource {
                    gpu_hit_tokens: cached,
                    cpu_hit_tokens: 0,
                    computed_tokens: u.prompt_tokens?.saturating_sub(cached),
                })
            });
            if let Some(p) = p {
                prefix.gpu_hit_tokens += p.gpu_hit_tokens;
                prefix.cpu_hit_tokens += p.cpu_hit_tokens;
                prefix.computed_tokens += p.computed_tokens;
            }
        }
        RoundPoint {
            mean_ttft_s: stats.as_ref().map_or(f64::NAN, Stats::mean_s),
            p90_ttft_s: stats.as_ref().map_or(f64::NAN, Stats::p90_s),
            round_time_s: round.duration_ns as f64 / 1e9,
            prefix,
        }
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
    /// The warmup and query rounds of `rounds`; `None` when either is missing.
    pub fn of(rounds: &[RoundRecord]) -> Option<ArmPoint> {
        let find = |kind| rounds.iter().find(|r| r.kind == kind).map(RoundPoint::of);
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
        let p = &self.query.prefix;
        let hit = p.gpu_hit_tokens + p.cpu_hit_tokens;
        hit as f64 / (hit + p.computed_tokens).max(1) as f64
    }
}

/// Both arms at one working set (an arm not measured is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Documents in the working set.
    pub num_documents: usize,
    /// Their prompt tokens, all together.
    pub working_set_tokens: u64,
    /// vLLM alone.
    pub vllm: Option<ArmPoint>,
    /// vLLM + LMCache.
    pub lmcache: Option<ArmPoint>,
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

/// Where LMCache pays off along a sweep of working sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossovers {
    /// The first document count at which vLLM's query round takes less than half of its
    /// prompt tokens from its prefix cache: the GPU cache's cliff.
    pub vllm_cliff: Option<usize>,
    /// The first and last document counts of the widest run of points where LMCache wins.
    pub wins: Option<(usize, usize)>,
    /// The largest query TTFT gain, and where.
    pub best_gain: f64,
    /// The document count of the best gain.
    pub best_at: usize,
    /// Below the winning run: the largest TTFT cost of LMCache (e.g. 0.12 = +12 %).
    pub cost_below: Option<f64>,
    /// Past the winning run: the largest gain left.
    pub gain_past: Option<f64>,
    /// All of it in one sentence.
    pub verdict: String,
}

impl Crossovers {
    /// Finds them in `points` (sorted by document count).
    pub fn find(points: &[SweepPoint]) -> Crossovers {
        let vllm_cliff = points
            .iter()
            .find(|p| p.vllm.is_some_and(|v| v.query_hit_fraction() < 0.5))
            .map(|p| p.num_documents);
        if points.iter().any(|p| p.both().is_none()) {
            let verdict = match vllm_cliff {
                Some(n) => format!(
                    "vLLM's query round stops hitting its prefix cache at {n} documents: the working set outgrows the GPU cache there."
                ),
                None => "vLLM's query round hits its prefix cache at every point.".to_string(),
            };
            return Crossovers {
                vllm_cliff,
                wins: None,
                best_gain: f64::NAN,
                best_at: 0,
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
        let best_at = top.map_or(0, |p| p.num_documents);
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
        let wins = best.map(|(a, b)| (points[a].num_documents, points[b].num_documents));
        let verdict = verdict(points, wins, best_gain, best_at, cost_below, gain_past);
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

fn verdict(
    points: &[SweepPoint],
    wins: Option<(usize, usize)>,
    best_gain: f64,
    best_at: usize,
    cost_below: Option<f64>,
    gain_past: Option<f64>,
) -> String {
    let Some((from, to)) = wins else {
        let cost = cost_below.map_or(String::new(), |c| {
            format!("; it costs up to +{:.0} % TTFT", c * 100.0)
        });
        return format!(
            "No benefit expected: LMCache wins nowhere in this range (best query TTFT gain {best_gain:.2}× at {best_at} documents){cost}."
        );
    };
    let mut text = format!(
        "LMCache wins from {from} to {to} documents, by up to {best_gain:.1}× in query TTFT (at {best_at})"
    );
    if let Some(c) = cost_below {
        let first = points.first().map_or(0, |p| p.num_documents);
        text.push_str(&format!(
            "; from {first} to below {from} (the working set fits the GPU cache) it costs up to +{:.0} % TTFT",
            c * 100.0
        ));
    }
    if let Some(g) = gain_past {
        text.push_str(&format!(
            "; past {to} the CPU tier overflows too and the gain falls to {g:.2}×"
        ));
    }
    text.push('.');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ttft_s: f64) -> RoundPoint {
        RoundPoint {
            mean_ttft_s: ttft_s,
            p90_ttft_s: ttft_s,
            round_time_s: ttft_s * 10.0,
            prefix: PrefixSource::default(),
        }
    }

    /// A point where the arms' (warmup, query) mean TTFTs are as given.
    fn point(n: usize, vllm: (f64, f64), lmcache: (f64, f64)) -> SweepPoint {
        let arm = |(w, q)| ArmPoint {
            warmup: round(w),
            query: round(q),
        };
        SweepPoint {
            num_documents: n,
            working_set_tokens: n as u64 * 10_000,
            vllm: Some(arm(vllm)),
            lmcache: Some(arm(lmcache)),
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
        let c = Crossovers::find(&points);
        assert_eq!(c.wins, Some((60, 100)));
        assert_eq!(c.best_at, 60);
        assert!((c.best_gain - 0.75 / 0.21).abs() < 1e-9);
        // The test rounds carry no prefix sources: nothing hit, a cliff at the first point.
        assert_eq!(c.vllm_cliff, Some(10));
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
        let c = Crossovers::find(&[point(10, (0.75, 0.20), (0.80, 0.21))]);
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
        let c = Crossovers::find(&[only_vllm(10, 99), only_vllm(20, 60), only_vllm(21, 10)]);
        assert_eq!(c.vllm_cliff, Some(21));
        assert_eq!(c.wins, None);
        assert!(
            c.verdict.contains("stops hitting its prefix cache at 21"),
            "{}",
            c.verdict
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
        assert_eq!(Crossovers::find(&points).wins, Some((3, 4)));
    }
}

//! A cost model measured on one running server (`ldqa calibrate`), instead of a GPU's
//! peaks and fitted efficiencies.
//!
//! A step costs `step + sequence × sequences + token × tokens + context × Σpairs +
//! decode_context × Σdecode context`: a fixed cost, a cost per sequence in the batch (its
//! metadata, its sampling), per token run through the model, per (token, earlier token)
//! pair of a prefill's attention, and per token of context a decoding request reads. Requests pay
//! `frontend_request` plus `frontend_prompt_token` per prompt token (rendering the chat
//! template, tokenising, hashing the blocks: cached or not) before they reach the engine.
//! Those seven numbers are fitted by least
//! squares (on relative error) to what a server's API shows: the time to first token of
//! prompts of several lengths, fresh and with a cached prefix, and the time per output token
//! of requests decoding alone and four at a time. (Measured one at a time only, a step always
//! holds one sequence and the two fixed costs cannot be told apart: a first fit put 12 ms on
//! each sequence and none on the step, and predicted batches of 4 four times too slow.)
//!
//! The features of each measurement follow the scheduler: a request alone in the engine
//! prefills its uncached tokens in chunks of `max_num_batched_tokens` (one step each,
//! sampling on the last), then decodes one token per step.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cost::context_sum;
use crate::SimError;

/// The version of the profile file this crate writes. It reads 1 and 2 too (the same
/// fields, less `frontend_prompt_token_ns`, then 0; 2 added kernel profiles,
/// [`crate::kernels::KernelProfile`], to the same format; 3 the cost per prompt token).
pub const PROFILE_VERSION: u32 = 3;

/// A profile file of either source: step costs measured end to end on a server
/// (`ldqa calibrate`), or a GPU's kernel curves (`data/kernels/`, or the user's own).
#[derive(Debug, Clone)]
pub enum AnyProfile {
    /// Measured on a running server.
    Server(Profile),
    /// Measured kernel by kernel on a GPU.
    Kernels(crate::kernels::KernelProfile),
}

impl AnyProfile {
    /// Reads a profile file; which kind it is follows from its `kernels` section.
    pub fn read(path: &Path) -> Result<AnyProfile, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
        if value.get("kernels").is_some() {
            crate::kernels::KernelProfile::read(path).map(AnyProfile::Kernels)
        } else {
            Profile::read(path).map(AnyProfile::Server)
        }
    }
}

fn bad(path: &Path, reason: String) -> SimError {
    SimError::InvalidConfig {
        field: "profile",
        reason: format!("{}: {reason}", path.display()),
    }
}

/// Step costs linear in what a step does (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearCost {
    /// Fixed cost of every step (scheduling, launch, Python).
    pub step_ns: f64,
    /// Per sequence in the step (batch metadata, logits, sampling).
    pub sequence_ns: f64,
    /// Per token run through the model.
    pub token_ns: f64,
    /// Per (token, earlier token) pair of attention in a prefill chunk (several tokens of
    /// a request computed together).
    pub context_ns: f64,
    /// Per token of context a decoding request (one token) attends to. Reading the KV of
    /// one token for one query costs more than a pair of a prefill, which shares each read
    /// among the chunk's queries (on the CPU vLLM, 7–9×). Absent from profiles before
    /// version 3: `context_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_context_ns: Option<f64>,
}

impl LinearCost {
    /// The cost of a step of `sequences` requests and `tokens`, its prefill chunks'
    /// tokens attending to `prefill_pairs` (token, earlier token) pairs and its decoding
    /// requests to `decode_context` tokens of context.
    pub fn step(
        &self,
        sequences: u64,
        tokens: u64,
        prefill_pairs: u64,
        decode_context: u64,
    ) -> f64 {
        self.step_ns
            + self.sequence_ns * sequences as f64
            + self.token_ns * tokens as f64
            + self.context_ns * prefill_pairs as f64
            + self.decode_context_ns() * decode_context as f64
    }

    /// The cost per token of context of a decoding request.
    pub fn decode_context_ns(&self) -> f64 {
        self.decode_context_ns.unwrap_or(self.context_ns)
    }
}

/// One point of the fit: what was measured, and what the fit gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitPoint {
    /// E.g. `TTFT, 2010 prompt tokens, 0 cached`.
    pub what: String,
    /// Measured, nanoseconds: the median of `samples_ns`.
    pub measured_ns: f64,
    /// The fitted profile's value, nanoseconds.
    pub fitted_ns: f64,
    /// Every measurement of this observation, nanoseconds, in the order taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples_ns: Vec<f64>,
}

/// A server's measured cost model, as `ldqa calibrate` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Always [`PROFILE_VERSION`].
    pub profile_version: u32,
    /// The server measured (its `/v1` URL).
    pub server: String,
    /// The model it served.
    pub model: String,
    /// When, seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// The `max_num_batched_tokens` the fit assumed (prefill chunk size).
    pub max_num_batched_tokens: u64,
    /// The fitted step costs.
    pub cost: LinearCost,
    /// Front end and client per request (HTTP, streaming), nanoseconds.
    pub frontend_request_ns: f64,
    /// Front end per prompt token (template, tokenising, block hashes), nanoseconds.
    /// Absent from profiles before version 3: 0.
    #[serde(default)]
    pub frontend_prompt_token_ns: f64,
    /// Every measurement and its fitted value.
    pub fit: Vec<FitPoint>,
    /// The largest |fitted − measured| / measured over the points.
    pub max_rel_error: f64,
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn read(path: &Path) -> Result<Profile, SimError> {
        let bad = |reason: String| bad(path, reason);
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let p: Profile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if !(1..=PROFILE_VERSION).contains(&p.profile_version) {
            return Err(bad(format!(
                "profile_version {} (this ldqa reads 1 to {PROFILE_VERSION})",
                p.profile_version
            )));
        }
        let c = &p.cost;
        let all = [
            c.step_ns,
            c.sequence_ns,
            c.token_ns,
            c.context_ns,
            c.decode_context_ns(),
            p.frontend_request_ns,
            p.frontend_prompt_token_ns,
        ];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(bad("costs must be finite and non-negative".into()));
        }
        Ok(p)
    }
}

/// What the server does for a request before its engine sees it (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontendCost {
    /// Per request.
    pub request_ns: f64,
    /// Per prompt token.
    pub prompt_token_ns: f64,
}

/// What a measurement was: the features of the fit are derived from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// Time to first token of one request alone in the engine: `prompt_tokens`, of which
    /// `cached_tokens` hit the prefix cache.
    Ttft {
        /// Prompt tokens as the server counts them.
        prompt_tokens: u64,
        /// Of those, cached.
        cached_tokens: u64,
    },
    /// Mean time per output token of a request decoding in a batch of `batch` alike
    /// requests, from `prompt_tokens` of context for `output_tokens` tokens.
    Tpot {
        /// Context when decoding starts.
        prompt_tokens: u64,
        /// Tokens generated.
        output_tokens: u64,
        /// Requests decoding together (1: alone).
        batch: u64,
    },
}

/// The measurements of one observation, repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeated {
    /// What was measured.
    pub observation: Observation,
    /// Each measurement, nanoseconds, in the order taken.
    pub samples_ns: Vec<f64>,
}

impl Repeated {
    /// The median sample (the mean of the middle two of an even count).
    pub fn median_ns(&self) -> f64 {
        let mut v = self.samples_ns.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// Groups measurements of the same observation, first-seen order kept.
///
/// The fit takes each group's median, not every sample: a server sharing its cores with
/// the client now and then stalls, and its queued outputs then reach the client together
/// (8 tokens in 16 µs where a step takes 20 ms, seen in CI), and least squares on relative
/// error would bend every cost to that one sample.
pub fn group(points: &[(Observation, f64)]) -> Vec<Repeated> {
    let mut groups: Vec<Repeated> = Vec::new();
    for &(observation, ns) in points {
        match groups.iter_mut().find(|g| g.observation == observation) {
            Some(g) => g.samples_ns.push(ns),
            None => groups.push(Repeated {
                observation,
                samples_ns: vec![ns],
            }),
        }
    }
    groups
}

/// Unknowns of the fit: step, sequence, token, prefill pair, decode context, front end
/// per request and per prompt token.
const N: usize = 7;

/// The coefficients of (step, sequence, token, prefill pair, decode context, front end per
/// request, per prompt token) in an observation's time. A chunk of one token (the last
/// token of a prompt wholly cached) counts as a decode, as the scheduler does.
fn features(o: Observation, chunk: u64) -> [f64; N] {
    match o {
        Observation::Ttft {
            prompt_tokens,
            cached_tokens,
        } => {
            let mut f = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, prompt_tokens as f64];
            let mut start = cached_tokens.min(prompt_tokens.saturating_sub(1));
            while start < prompt_tokens {
                let n = (prompt_tokens - start).min(chunk.max(1));
                f[0] += 1.0;
                f[1] += 1.0;
                f[2] += n as f64;
                f[if n > 1 { 3 } else { 4 }] += context_sum(start, start + n) as f64;
                start += n;
            }
            f
        }
        Observation::Tpot {
            prompt_tokens,
            output_tokens,
            batch,
        } => {
            // Decode steps 2..=output: one token per request, at growing context.
            let steps = output_tokens.saturating_sub(1).max(1) as f64;
            let first = prompt_tokens + 1;
            let last = prompt_tokens + output_tokens.saturating_sub(1).max(1);
            let mean_context = (context_sum(first - 1, last) as f64) / steps;
            let b = batch.max(1) as f64;
            [1.0, b, b, 0.0, b * mean_context, 0.0, 0.0]
        }
    }
}

/// The time the profile gives for `o`.
pub fn predicted_ns(cost: &LinearCost, frontend: FrontendCost, o: Observation, chunk: u64) -> f64 {
    let f = features(o, chunk);
    let theta = [
        cost.step_ns,
        cost.sequence_ns,
        cost.token_ns,
        cost.context_ns,
        cost.decode_context_ns(),
        frontend.request_ns,
        frontend.prompt_token_ns,
    ];
    f.iter().zip(theta).map(|(a, b)| a * b).sum()
}

/// Fits the seven costs to `(observation, measured ns)` pairs: least squares on relative
/// error, every cost non-negative (a cost the data would make negative is fixed at 0 and
/// the rest refitted). Returns the step costs and the front end's.
pub fn fit(
    points: &[(Observation, f64)],
    chunk: u64,
) -> Result<(LinearCost, FrontendCost), SimError> {
    let rows: Vec<([f64; N], f64)> = points
        .iter()
        .filter(|(_, y)| *y > 0.0)
        .map(|&(o, y)| {
            let f = features(o, chunk);
            (f.map(|v| v / y), 1.0)
        })
        .collect();
    let mut active = [true; N];
    loop {
        let theta = solve_least_squares(&rows, &active).ok_or_else(|| SimError::InvalidConfig {
            field: "profile",
            reason: "the measurements do not determine the costs (too few or too alike)".into(),
        })?;
        match theta.iter().position(|&v| v < 0.0) {
            Some(i) => active[i] = false,
            None => {
                let cost = LinearCost {
                    step_ns: theta[0],
                    sequence_ns: theta[1],
                    token_ns: theta[2],
                    context_ns: theta[3],
                    decode_context_ns: Some(theta[4]),
                };
                let frontend = FrontendCost {
                    request_ns: theta[5],
                    prompt_token_ns: theta[6],
                };
                return Ok((cost, frontend));
            }
        }
    }
}

/// Ordinary least squares over the `active` columns (the others fixed at 0), by the normal
/// equations and Gaussian elimination with partial pivoting: seven unknowns do not need a
/// linear-algebra crate. `None` when the system is singular.
fn solve_least_squares(rows: &[([f64; N], f64)], active: &[bool; N]) -> Option<[f64; N]> {
    let cols: Vec<usize> = (0..N).filter(|&i| active[i]).collect();
    let k = cols.len();
    let mut a = vec![vec![0.0; k + 1]; k];
    for (x, y) in rows {
        for (r, &i) in cols.iter().enumerate() {
            for (c, &j) in cols.iter().enumerate() {
                a[r][c] += x[i] * x[j];
            }
            a[r][k] += x[i] * y;
        }
    }
    for p in 0..k {
        let pivot = (p..k).max_by(|&r, &s| a[r][p].abs().total_cmp(&a[s][p].abs()))?;
        if a[pivot][p].abs() < 1e-300 {
            return None;
        }
        a.swap(p, pivot);
        let pivot_row = a[p].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != p {
                let factor = row[p] / pivot_row[p];
                for (x, y) in row.iter_mut().zip(&pivot_row).skip(p) {
                    *x -= factor * y;
                }
            }
        }
    }
    let mut theta = [0.0; N];
    for (r, &i) in cols.iter().enumerate() {
        theta[i] = a[r][k] / a[r][r];
    }
    Some(theta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> (LinearCost, FrontendCost) {
        (
            LinearCost {
                step_ns: 8e6,
                sequence_ns: 2e6,
                token_ns: 30e3,
                context_ns: 5.0,
                decode_context_ns: Some(40.0),
            },
            FrontendCost {
                request_ns: 4e6,
                prompt_token_ns: 3e3,
            },
        )
    }

    fn observations() -> Vec<Observation> {
        let mut out = Vec::new();
        for p in [500, 1500, 3000, 6000] {
            out.push(Observation::Ttft {
                prompt_tokens: p,
                cached_tokens: 0,
            });
            out.push(Observation::Ttft {
                prompt_tokens: p,
                cached_tokens: p / 128 * 128,
            });
            for batch in [1, 4] {
                out.push(Observation::Tpot {
                    prompt_tokens: p,
                    output_tokens: 16,
                    batch,
                });
            }
        }
        out
    }

    #[test]
    fn recovers_the_costs_that_made_the_data() {
        let (cost, fe) = truth();
        let points: Vec<(Observation, f64)> = observations()
            .into_iter()
            .map(|o| (o, predicted_ns(&cost, fe, o, 2048)))
            .collect();
        let (fitted, fitted_fe) = fit(&points, 2048).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
        assert!(close(fitted.step_ns, cost.step_ns), "{fitted:?}");
        assert!(close(fitted.sequence_ns, cost.sequence_ns), "{fitted:?}");
        assert!(close(fitted.token_ns, cost.token_ns), "{fitted:?}");
        assert!(close(fitted.context_ns, cost.context_ns), "{fitted:?}");
        assert!(
            close(fitted.decode_context_ns(), cost.decode_context_ns()),
            "{fitted:?}"
        );
        assert!(close(fitted_fe.request_ns, fe.request_ns), "{fitted_fe:?}");
        assert!(
            close(fitted_fe.prompt_token_ns, fe.prompt_token_ns),
            "{fitted_fe:?}"
        );
    }

    #[test]
    fn one_stalled_sample_of_three_does_not_bend_the_fit() {
        let (cost, fe) = truth();
        let mut points = Vec::new();
        for o in observations() {
            let t = predicted_ns(&cost, fe, o, 2048);
            // Alike repeats, and one whose tokens all arrived at once.
            let stalled = if matches!(o, Observation::Tpot { .. }) {
                16e3
            } else {
                t * 6.0
            };
            points.extend([(o, t * 0.99), (o, stalled), (o, t * 1.01)]);
        }
        let medians: Vec<(Observation, f64)> = group(&points)
            .iter()
            .map(|g| (g.observation, g.median_ns()))
            .collect();
        assert_eq!(medians.len(), observations().len());
        let (fitted, fitted_fe) = fit(&medians, 2048).unwrap();
        // The medians are within 1 % of the truth (above it for TTFT, below for the time
        // per token), so the fit is within 2 %.
        for o in observations() {
            let true_ns = predicted_ns(&cost, fe, o, 2048);
            let fitted_ns = predicted_ns(&fitted, fitted_fe, o, 2048);
            let error = (fitted_ns - true_ns).abs() / true_ns;
            assert!(error <= 0.02, "{o:?}: {fitted_ns} vs {true_ns}");
        }
    }

    #[test]
    fn a_version_2_profile_reads_with_the_costs_it_had() {
        let dir = std::env::temp_dir().join(format!("ldqa-profile-v2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.json");
        std::fs::write(
            &path,
            r#"{"profile_version": 2, "server": "http://127.0.0.1:1/v1", "model": "m",
                "created_unix_s": 0, "max_num_batched_tokens": 2048,
                "cost": {"step_ns": 9e6, "sequence_ns": 3e5, "token_ns": 0, "context_ns": 30},
                "frontend_request_ns": 1.2e7, "fit": [], "max_rel_error": 0.05}"#,
        )
        .unwrap();
        let p = Profile::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Before version 3 one attention cost served prefills and decodes alike, and the
        // front end cost the same whatever the prompt's length.
        assert_eq!(p.cost.decode_context_ns(), 30.0);
        assert_eq!(p.frontend_prompt_token_ns, 0.0);
        assert_eq!(p.cost.step(1, 1, 0, 100), 9e6 + 3e5 + 3000.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let o = Observation::Tpot {
            prompt_tokens: 1,
            output_tokens: 3,
            batch: 1,
        };
        let g = |s: &[f64]| Repeated {
            observation: o,
            samples_ns: s.to_vec(),
        };
        assert_eq!(g(&[3.0, 1.0, 2.0]).median_ns(), 2.0);
        assert_eq!(g(&[4.0, 1.0, 3.0, 2.0]).median_ns(), 2.5);
        assert!(g(&[]).median_ns().is_nan());
    }

    #[test]
    fn a_prefill_longer_than_a_chunk_takes_several_steps() {
        let f = features(
            Observation::Ttft {
                prompt_tokens: 5000,
                cached_tokens: 0,
            },
            2048,
        );
        assert_eq!((f[0], f[1]), (3.0, 3.0));
        assert_eq!(f[2], 5000.0);
        assert_eq!(f[3], context_sum(0, 5000) as f64);
        // A full hit still computes the last token.
        let hit = features(
            Observation::Ttft {
                prompt_tokens: 1024,
                cached_tokens: 1024,
            },
            2048,
        );
        assert_eq!((hit[0], hit[2]), (1.0, 1.0));
    }

    #[test]
    fn negative_costs_are_pinned_at_zero() {
        // Data made without a front-end cost, plus noise that would push it below 0.
        let (cost, _) = truth();
        let fe = FrontendCost {
            request_ns: 0.0,
            prompt_token_ns: 0.0,
        };
        let points: Vec<(Observation, f64)> = observations()
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let noise = if i % 2 == 0 { 0.99 } else { 1.01 };
                (o, predicted_ns(&cost, fe, o, 2048) * noise)
            })
            .collect();
        let (fitted, fitted_fe) = fit(&points, 2048).unwrap();
        for v in [
            fitted.step_ns,
            fitted.sequence_ns,
            fitted.token_ns,
            fitted.context_ns,
            fitted.decode_context_ns(),
            fitted_fe.request_ns,
            fitted_fe.prompt_token_ns,
        ] {
            assert!(v >= 0.0, "{fitted:?} {fitted_fe:?}");
        }
    }
}

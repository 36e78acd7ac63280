//! A GPU's measured kernel speeds, as curves: how close to its peaks the GEMMs, the
//! prefill and decode attention kernels and the all-reduce come, by the size of the work.
//!
//! The files in `data/kernels/` are derived from NVIDIA AIConfigurator's public kernel
//! tables by `scripts/kernel-profiles` (each file names its repository, commit, tables and
//! licence, and what was dropped); they are embedded at build time, so nothing is read at
//! run time. A utilisation is speed-of-light time over measured time: a GEMM of `m` tokens
//! at util 0.25 takes four times its roofline. The cost model ([`crate::cost`]) composes a
//! step from these curves; the fixed costs the tables leave out (scheduling, launch,
//! sampling, the front end) stay fitted ([`crate::Efficiencies`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The version of a kernel profile file this crate reads. Kernel profiles came in with
/// version 2 of the profile format ([`crate::profile::PROFILE_VERSION`]); version 3 changed
/// only server profiles.
pub const KERNEL_PROFILE_VERSION: u32 = 2;

/// The embedded files: (GPU name, JSON).
const EMBEDDED: &[(&str, &str)] = &[
    ("h100-80gb", include_str!("../data/kernels/h100-80gb.json")),
    ("h200", include_str!("../data/kernels/h200.json")),
    ("a100-80gb", include_str!("../data/kernels/a100-80gb.json")),
    ("l40s", include_str!("../data/kernels/l40s.json")),
    ("b200", include_str!("../data/kernels/b200.json")),
    ("a40", include_str!("../data/kernels/a40.json")),
];

/// Points `(x, y)` with `x` ascending: `y` between them linear in `ln x`, held flat
/// outside them (AIConfigurator's rule too: beyond the measured range the boundary
/// utilisation holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<[f64; 2]>", into = "Vec<[f64; 2]>")]
pub struct Curve {
    ln_x: Vec<f64>,
    y: Vec<f64>,
}

impl TryFrom<Vec<[f64; 2]>> for Curve {
    type Error = String;

    fn try_from(points: Vec<[f64; 2]>) -> Result<Self, String> {
        if points.is_empty() {
            return Err("a curve needs at least one point".into());
        }
        if points
            .iter()
            .any(|[x, y]| !(x.is_finite() && *x > 0.0 && y.is_finite() && *y > 0.0))
        {
            return Err("every x and y must be finite and positive".into());
        }
        if points.windows(2).any(|w| w[0][0] >= w[1][0]) {
            return Err("x must be strictly ascending".into());
        }
        Ok(Curve {
            ln_x: points.iter().map(|p| p[0].ln()).collect(),
            y: points.iter().map(|p| p[1]).collect(),
        })
    }
}

impl From<Curve> for Vec<[f64; 2]> {
    fn from(c: Curve) -> Self {
        c.ln_x
            .iter()
            .zip(&c.y)
            .map(|(l, y)| [l.exp(), *y])
            .collect()
    }
}

impl Curve {
    /// The value at `x` (> 0).
    pub fn at(&self, x: f64) -> f64 {
        let lx = x.max(f64::MIN_POSITIVE).ln();
        let i = self.ln_x.partition_point(|&v| v < lx);
        if i == 0 {
            return self.y[0];
        }
        if i == self.ln_x.len() {
            return self.y[i - 1];
        }
        let (x0, x1) = (self.ln_x[i - 1], self.ln_x[i]);
        let t = (lx - x0) / (x1 - x0);
        self.y[i - 1] + t * (self.y[i] - self.y[i - 1])
    }

    /// The largest `x`.
    pub fn max_x(&self) -> f64 {
        self.ln_x.last().map_or(0.0, |l| l.exp())
    }
}

/// Curves keyed by a size (e.g. a weight matrix's elements, or heads per GPU), with
/// `key` strictly ascending: between two rows the value is linear in `ln key`, outside them
/// the nearest row's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(f64, Curve)>", into = "Vec<(f64, Curve)>")]
pub struct Surface {
    rows: Vec<(f64, Curve)>,
}

impl TryFrom<Vec<(f64, Curve)>> for Surface {
    type Error = String;

    fn try_from(rows: Vec<(f64, Curve)>) -> Result<Self, String> {
        if rows.is_empty() {
            return Err("a surface needs at least one row".into());
        }
        if rows.iter().any(|(k, _)| !(k.is_finite() && *k > 0.0)) {
            return Err("every key must be finite and positive".into());
        }
        if rows.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("keys must be strictly ascending".into());
        }
        Ok(Surface { rows })
    }
}

impl From<Surface> for Vec<(f64, Curve)> {
    fn from(s: Surface) -> Self {
        s.rows
    }
}

impl Surface {
    /// The curve at `key`: a row, or two rows blended point by point over both rows' x.
    pub fn curve(&self, key: f64) -> Curve {
        let i = self.rows.partition_point(|(k, _)| *k < key);
        if i == 0 {
            return self.rows[0].1.clone();
        }
        if i == self.rows.len() {
            return self.rows[i - 1].1.clone();
        }
        let ((k0, lo), (k1, hi)) = (&self.rows[i - 1], &self.rows[i]);
        let t = (key.ln() - k0.ln()) / (k1.ln() - k0.ln());
        let mut ln_x: Vec<f64> = lo.ln_x.iter().chain(&hi.ln_x).copied().collect();
        ln_x.sort_by(f64::total_cmp);
        ln_x.dedup();
        let y = ln_x
            .iter()
            .map(|l| {
                let x = l.exp();
                (1.0 - t) * lo.at(x) + t * hi.at(x)
            })
            .collect();
        Curve { ln_x, y }
    }

    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.rows.iter().flat_map(|(_, c)| c.y.iter().copied())
    }
}

/// All-reduce time against message bytes, for one TP size: linear in `ln bytes` between
/// the measured points, the smallest's time below them, and bandwidth-bound (time ∝
/// bytes) above them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllReduce(Curve);

impl AllReduce {
    /// Nanoseconds to all-reduce `bytes`.
    pub fn ns(&self, bytes: f64) -> f64 {
        let max = self.0.max_x();
        if bytes > max {
            self.0.at(max) * bytes / max
        } else {
            self.0.at(bytes)
        }
    }
}

/// The measured curves of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelCurves {
    /// The peak the utilisations are relative to, dense BF16 TFLOP/s.
    pub peak_tflops: f64,
    /// The HBM bandwidth they are relative to, GB/s.
    pub hbm_gb_per_s: f64,
    /// BF16 GEMM utilisation against `m` (tokens in the step), by the weight matrix's
    /// elements `n·k`.
    pub gemm: Surface,
    /// Prefill (context) attention utilisation of FLOPs against the prompt length, by
    /// query heads per GPU.
    pub context_attention: Surface,
    /// Decode (generation) attention utilisation of HBM against KV bytes read per layer.
    pub generation_attention: Curve,
    /// All-reduce time against message bytes, by TP size ("2", "4", "8").
    #[serde(default)]
    pub allreduce: BTreeMap<String, AllReduce>,
}

/// Where a kernel profile's numbers came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSource {
    /// The repository the tables are in.
    pub repository: String,
    /// Its commit.
    pub commit: String,
    /// The tables' licence.
    pub licence: String,
    /// The tables read, by path in the repository.
    pub tables: Vec<String>,
    /// The tool that derived the curves.
    pub derived_by: String,
    /// What was dropped, and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl KernelSource {
    /// The repository's name, e.g. `aiconfigurator`.
    pub fn repository_name(&self) -> &str {
        self.repository
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// The commit's first seven digits.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }
}

/// A GPU's kernel profile: the curves and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelProfile {
    /// Always [`KERNEL_PROFILE_VERSION`].
    pub profile_version: u32,
    /// The catalog GPU it describes.
    pub gpu: String,
    /// What it is, in a sentence or two.
    pub about: String,
    /// Provenance.
    pub source: KernelSource,
    /// The curves.
    pub kernels: Arc<KernelCurves>,
}

impl KernelProfile {
    /// The embedded profile of `gpu`, if the tables cover it.
    pub fn for_gpu(gpu: &str) -> Option<KernelProfile> {
        let (_, json) = EMBEDDED.iter().find(|(name, _)| *name == gpu)?;
        Some(Self::parse(json, gpu).expect("invariant: the embedded kernel profiles parse"))
    }

    /// The GPUs with an embedded profile.
    pub fn known_gpus() -> Vec<&'static str> {
        EMBEDDED.iter().map(|(name, _)| *name).collect()
    }

    /// A profile file (e.g. one the user derived from their own tables).
    pub fn read(path: &Path) -> Result<KernelProfile, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path.display(), e.to_string()))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(json: &str, what: &str) -> Result<KernelProfile, SimError> {
        let p: KernelProfile = serde_json::from_str(json).map_err(|e| bad(what, e.to_string()))?;
        if p.profile_version != KERNEL_PROFILE_VERSION {
            return Err(bad(
                what,
                format!(
                    "profile_version {} (kernel profiles are version {KERNEL_PROFILE_VERSION})",
                    p.profile_version
                ),
            ));
        }
        Ok(p)
    }
}

fn bad(what: impl std::fmt::Display, reason: String) -> SimError {
    SimError::InvalidConfig {
        field: "kernel profile",
        reason: format!("{what}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[[f64; 2]]) -> Curve {
        Curve::try_from(points.to_vec()).unwrap()
    }

    #[test]
    fn a_curve_is_linear_in_log_x_and_flat_outside() {
        let c = curve(&[[1.0, 0.1], [100.0, 0.5], [10_000.0, 0.9]]);
        assert_eq!(c.at(0.5), 0.1);
        assert_eq!(c.at(1.0), 0.1);
        assert!((c.at(10.0) - 0.3).abs() < 1e-12);
        assert_eq!(c.at(100.0), 0.5);
        assert!((c.at(1000.0) - 0.7).abs() < 1e-12);
        assert_eq!(c.at(1e9), 0.9);
    }

    #[test]
    fn bad_curves_are_refused() {
        for points in [
            vec![],
            vec![[2.0, 0.5], [1.0, 0.6]],
            vec![[1.0, 0.5], [1.0, 0.6]],
            vec![[0.0, 0.5]],
            vec![[1.0, f64::NAN]],
        ] {
            assert!(Curve::try_from(points).is_err());
        }
    }

    #[test]
    fn a_surface_blends_its_two_nearest_rows() {
        let s = Surface::try_from(vec![
            (10.0, curve(&[[1.0, 0.2], [100.0, 0.4]])),
            (1000.0, curve(&[[10.0, 0.6]])),
        ])
        .unwrap();
        assert_eq!(s.curve(1.0), s.rows[0].1);
        assert_eq!(s.curve(1e6), s.rows[1].1);
        // Halfway in ln key: the mean of the rows at each x of either.
        let mid = s.curve(100.0);
        assert!((mid.at(1.0) - 0.4).abs() < 1e-12);
        assert!((mid.at(10.0) - 0.45).abs() < 1e-12);
        assert!((mid.at(100.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn an_allreduce_past_the_table_is_bandwidth_bound() {
        let a = AllReduce(curve(&[[1024.0, 5_000.0], [1_048_576.0, 20_000.0]]));
        assert_eq!(a.ns(10.0), 5_000.0);
        assert_eq!(a.ns(1_048_576.0), 20_000.0);
        assert_eq!(a.ns(4.0 * 1_048_576.0), 80_000.0);
    }

    #[test]
    fn every_embedded_profile_parses_and_is_plausible() {
        for gpu in KernelProfile::known_gpus() {
            let p = KernelProfile::for_gpu(gpu).unwrap();
            assert_eq!(p.gpu, gpu);
            let k = &p.kernels;
            let utils = k
                .gemm
                .values()
                .chain(k.context_attention.values())
                .chain(k.generation_attention.y.iter().copied());
            for y in utils {
                assert!(y > 0.0 && y <= 1.0, "{gpu}: util {y}");
            }
            assert!(p.source.commit.len() == 40, "{gpu}: {}", p.source.commit);
        }
    }
}

//! The axes `ldqa sweep` runs along, and the grid of settings they make.
//!
//! Every axis flag takes one value or several ([`super::range`]); those given several are
//! swept. One swept axis draws one curve; two make a grid, one curve per value of the
//! second. The working set (`--num-documents`) is swept by default, and is always the x
//! axis when it is swept; otherwise the first swept axis in [`Axis::ALL`]'s order is.

use ldqa_metrics::{AxisValue, SweptAxis};
use ldqa_workload::HitMissRatio;

use crate::cmd::predict_trace::{ClusterArgs, RouterArg};

/// An axis a sweep can run along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    NumDocuments,
    DocumentLength,
    MaxInflightRequests,
    HitMissRatio,
    LmcacheCpuGib,
    TensorParallelSize,
    Gpu,
    Model,
    Instances,
    Router,
    RemoteGib,
    RemoteGbps,
}

impl Axis {
    /// Every axis, in the order the x axis is chosen.
    pub const ALL: [Axis; 12] = [
        Axis::NumDocuments,
        Axis::DocumentLength,
        Axis::MaxInflightRequests,
        Axis::HitMissRatio,
        Axis::LmcacheCpuGib,
        Axis::TensorParallelSize,
        Axis::Gpu,
        Axis::Model,
        Axis::Instances,
        Axis::RemoteGib,
        Axis::RemoteGbps,
        Axis::Router,
    ];

    /// Its flag.
    pub fn flag(self) -> &'static str {
        match self {
            Axis::NumDocuments => "--num-documents",
            Axis::DocumentLength => "--document-length",
            Axis::MaxInflightRequests => "--max-inflight-requests",
            Axis::HitMissRatio => "--hit-miss-ratio",
            Axis::LmcacheCpuGib => "--lmcache-cpu-gib",
            Axis::TensorParallelSize => "--tensor-parallel-size",
            Axis::Gpu => "--gpu",
            Axis::Model => "--model",
            Axis::Instances => "--instances",
            Axis::Router => "--router",
            Axis::RemoteGib => "--remote-gib",
            Axis::RemoteGbps => "--remote-gbps",
        }
    }

    /// Whether it shapes the simulated cluster (instances, router, shared tier): the
    /// simulator's, which servers given or started cannot follow.
    pub fn shapes_the_cluster(self) -> bool {
        matches!(
            self,
            Axis::Instances | Axis::Router | Axis::RemoteGib | Axis::RemoteGbps
        )
    }

    /// Whether it changes the deployment (the servers), not only the workload.
    pub fn changes_deployment(self) -> bool {
        matches!(
            self,
            Axis::LmcacheCpuGib | Axis::TensorParallelSize | Axis::Gpu | Axis::Model
        )
    }

    /// As the reports name it.
    pub fn swept(self) -> SweptAxis {
        SweptAxis {
            flag: self.flag().into(),
        }
    }
}

/// Every axis's value at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub num_documents: usize,
    pub document_length: usize,
    pub max_inflight_requests: usize,
    pub hit_miss: Option<HitMissRatio>,
    pub lmcache_cpu_gib: Option<f64>,
    pub tensor_parallel_size: Option<u32>,
    pub gpu: Option<String>,
    pub model: String,
    pub instances: usize,
    pub router: RouterArg,
    /// The shared remote tier, GiB (none: each instance's own tiers only).
    pub remote_gib: Option<f64>,
    /// Its link, Gbit/s.
    pub remote_gbps: f64,
}

impl Setting {
    /// `axis`'s value here.
    pub fn get(&self, axis: Axis) -> AxisValue {
        let whole = |n: usize| AxisValue::Whole(n as u64);
        let name = |s: Option<String>| AxisValue::Name(s.unwrap_or_else(|| "default".into()));
        match axis {
            Axis::NumDocuments => whole(self.num_documents),
            Axis::DocumentLength => whole(self.document_length),
            Axis::MaxInflightRequests => whole(self.max_inflight_requests),
            Axis::HitMissRatio => name(self.hit_miss.map(|r| r.to_string())),
            Axis::LmcacheCpuGib => self
                .lmcache_cpu_gib
                .map_or_else(|| name(None), AxisValue::Real),
            Axis::TensorParallelSize => self
                .tensor_parallel_size
                .map_or_else(|| name(None), |n| AxisValue::Whole(n.into())),
            Axis::Gpu => name(self.gpu.clone()),
            Axis::Model => AxisValue::Name(self.model.clone()),
            Axis::Instances => whole(self.instances),
            Axis::Router => AxisValue::Name(self.router.name().into()),
            Axis::RemoteGib => AxisValue::Real(self.remote_gib.unwrap_or(0.0)),
            Axis::RemoteGbps => AxisValue::Real(self.remote_gbps),
        }
    }

    /// This setting with `axis` at `value` (one of the values the axis was given).
    pub fn with(&self, axis: Axis, value: &Value) -> Setting {
        let mut s = self.clone();
        match (axis, value) {
            (Axis::NumDocuments, Value::Count(n)) => s.num_documents = *n,
            (Axis::DocumentLength, Value::Count(n)) => s.document_length = *n,
            (Axis::MaxInflightRequests, Value::Count(n)) => s.max_inflight_requests = *n,
            (Axis::HitMissRatio, Value::Ratio(r)) => s.hit_miss = Some(*r),
            (Axis::LmcacheCpuGib, Value::Real(g)) => s.lmcache_cpu_gib = Some(*g),
            (Axis::TensorParallelSize, Value::Count(n)) => {
                s.tensor_parallel_size = u32::try_from(*n).ok();
            }
            (Axis::Gpu, Value::Name(n)) => s.gpu = Some(n.clone()),
            (Axis::Model, Value::Name(n)) => s.model = n.clone(),
            (Axis::Instances, Value::Count(n)) => s.instances = *n,
            (Axis::Router, Value::Router(r)) => s.router = *r,
            (Axis::RemoteGib, Value::Real(g)) => s.remote_gib = Some(*g).filter(|&g| g > 0.0),
            (Axis::RemoteGbps, Value::Real(g)) => s.remote_gbps = *g,
            _ => debug_assert!(false, "{axis:?} given {value:?}"),
        }
        s
    }

    /// `base` (the cluster flags) with this setting's instances, router and shared tier.
    pub fn cluster(&self, base: &ClusterArgs) -> ClusterArgs {
        base.at(
            self.instances,
            self.router,
            self.remote_gib,
            self.remote_gbps,
        )
    }

    /// What identifies its deployment (the engines simulated or served).
    pub fn deployment_key(&self) -> String {
        format!(
            "{}|{:?}|{:?}|{:?}",
            self.model, self.gpu, self.tensor_parallel_size, self.lmcache_cpu_gib
        )
    }
}

/// One value given to an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Count(usize),
    Ratio(HitMissRatio),
    /// A size (GiB) or a rate (Gbit/s).
    Real(f64),
    Name(String),
    Router(RouterArg),
}

/// The axes swept: the x axis and, for a grid, the second (with their values; the working
/// set's values are `None` when they are to be chosen per curve around its capacities).
#[derive(Debug, Clone)]
pub struct Grid {
    pub x: (Axis, Option<Vec<Value>>),
    pub series: Option<(Axis, Vec<Value>)>,
}

impl Grid {
    /// The grid of `given` (every axis with its values; more than one value sweeps it),
    /// the working set's default range standing in when `--num-documents` is not given.
    pub fn of(given: &[(Axis, Vec<Value>)], num_documents_given: bool) -> anyhow::Result<Grid> {
        let mut swept: Vec<(Axis, Option<Vec<Value>>)> = Vec::new();
        if !num_documents_given {
            swept.push((Axis::NumDocuments, None));
        }
        for axis in Axis::ALL {
            if let Some((_, values)) = given.iter().find(|(a, v)| *a == axis && v.len() > 1) {
                swept.push((axis, Some(values.clone())));
            }
        }
        let flags = |s: &[(Axis, Option<Vec<Value>>)]| {
            s.iter()
                .map(|(a, _)| a.flag())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if swept.is_empty() {
            // One point: along the working set, at the documents given.
            let given_counts = given
                .iter()
                .find(|(a, _)| *a == Axis::NumDocuments)
                .map(|(_, v)| v.clone());
            swept.push((Axis::NumDocuments, given_counts));
        }
        match swept.len() {
            1 | 2 => {}
            _ if !num_documents_given => anyhow::bail!(
                "a sweep runs along one axis, or two as a grid; {} were swept ({}, with --num-documents swept by default): give --num-documents one value",
                swept.len(),
                flags(&swept)
            ),
            _ => anyhow::bail!(
                "a sweep runs along one axis, or two as a grid; {} were given several values ({})",
                swept.len(),
                flags(&swept)
            ),
        }
        let mut swept = swept.into_iter();
        let x = swept.next().expect("one axis at least");
        let series = swept.next().map(|(a, v)| (a, v.unwrap_or_default()));
        Ok(Grid { x, series })
    }

    /// The swept axes that shape the simulated cluster, by flag.
    pub fn cluster_axes(&self) -> Vec<&'static str> {
        [Some(self.x.0), self.series.as_ref().map(|s| s.0)]
            .into_iter()
            .flatten()
            .filter(|a| a.shapes_the_cluster())
            .map(Axis::flag)
            .collect()
    }

    /// The axes that change the deployment, by flag.
    pub fn deployment_axes(&self) -> Vec<&'static str> {
        [Some(self.x.0), self.series.as_ref().map(|s| s.0)]
            .into_iter()
            .flatten()
            .filter(|a| a.changes_deployment())
            .map(Axis::flag)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[usize]) -> Vec<Value> {
        v.iter().map(|&n| Value::Count(n)).collect()
    }

    #[test]
    fn the_working_set_is_swept_by_default_and_comes_first() {
        let g = Grid::of(&[(Axis::Gpu, vec![Value::Name("h200".into())])], false).unwrap();
        assert_eq!(g.x.0, Axis::NumDocuments);
        assert!(g.series.is_none());
        let g = Grid::of(
            &[(
                Axis::LmcacheCpuGib,
                vec![Value::Real(20.0), Value::Real(50.0)],
            )],
            false,
        )
        .unwrap();
        assert_eq!(g.x.0, Axis::NumDocuments);
        assert_eq!(g.series.unwrap().0, Axis::LmcacheCpuGib);
    }

    #[test]
    fn another_axis_alone_is_the_x_axis() {
        let g = Grid::of(
            &[
                (Axis::NumDocuments, counts(&[46])),
                (Axis::MaxInflightRequests, counts(&[1, 2, 4])),
            ],
            true,
        )
        .unwrap();
        assert_eq!(g.x.0, Axis::MaxInflightRequests);
        assert!(g.series.is_none());
    }

    #[test]
    fn three_axes_are_refused_naming_them() {
        let e = Grid::of(
            &[
                (
                    Axis::Gpu,
                    vec![Value::Name("a".into()), Value::Name("b".into())],
                ),
                (Axis::DocumentLength, counts(&[1, 2])),
            ],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--num-documents, --document-length, --gpu"),
            "{e}"
        );
        assert!(e.contains("give --num-documents one value"), "{e}");
        let one = Grid::of(&[(Axis::NumDocuments, counts(&[4]))], true).unwrap();
        assert_eq!(one.x, (Axis::NumDocuments, Some(counts(&[4]))));
    }
}

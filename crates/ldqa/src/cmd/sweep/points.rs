//! The sweep's points before they run: every setting of the grid, with the engines that
//! run it (resolved once per deployment) and what they hold; and the simulator's run of one.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use ldqa_metrics::{ArmPoint, AxisValue, Capacities, InstanceShare, SweepPoint};
use ldqa_model::RoundKind;
use ldqa_sim::protocol::{run_protocol_on_cluster, SimClient};
use ldqa_sim::{EngineKind, Scenario};
use ldqa_workload::{Workload, WorkloadConfig};

use super::axes::{Axis, Grid, Setting, Value};
use super::SweepArgs;
use crate::cmd::predict_trace::ClusterArgs;

/// One deployment's two engines, as simulated (and as described for servers).
#[derive(Clone)]
pub(super) struct Engines {
    /// The deployment both run (for the servers `--start` starts).
    pub deployment: ldqa_recommend::Deployment,
    pub vllm: Scenario,
    pub lmcache: Scenario,
    pub client: SimClient,
    pub description: String,
}

/// One point to run.
#[derive(Clone)]
pub(super) struct Task {
    /// The point in words, for progress lines.
    label: String,
    pub setting: Setting,
    pub x: AxisValue,
    pub series: Option<AxisValue>,
    pub capacities: Capacities,
    pub engines: Arc<Engines>,
    /// The simulated cluster it runs on (one engine alone unless the cluster flags say).
    pub cluster: ClusterArgs,
}

impl Task {
    /// "42 documents", or "--gpu h200, 42 documents".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `point` is this task's, already done (`--resume`).
    pub fn done_in(&self, point: &SweepPoint) -> bool {
        point.x == self.x
            && point.series == self.series
            && point.num_documents == self.setting.num_documents
    }
}

/// Every point of `grid`, curve after curve; the engines are resolved (and the flags
/// checked) once per deployment, before anything runs.
pub(super) fn tasks(args: &SweepArgs, base: &Setting, grid: &Grid) -> anyhow::Result<Vec<Task>> {
    let mut engines = EngineCache::default();
    let mut resolve = |s: &Setting| engines.get(args, s);
    let curves: Vec<(Setting, Option<(&str, AxisValue)>)> = match &grid.series {
        None => vec![(base.clone(), None)],
        Some((axis, values)) => values
            .iter()
            .map(|v| {
                let s = base.with(*axis, v);
                let value = s.get(*axis);
                (s, Some((axis.flag(), value)))
            })
            .collect(),
    };
    let mut tasks = Vec::new();
    for (curve, series) in curves {
        let (axis, values) = &grid.x;
        let values = match values {
            Some(v) => v.clone(),
            None => {
                let e = resolve(&curve)?;
                let c = capacities(args, &curve, &e)?;
                default_counts(&c, curve.instances)
                    .into_iter()
                    .map(Value::Count)
                    .collect()
            }
        };
        for v in &values {
            let setting = curve.with(*axis, v);
            let engines = resolve(&setting)?;
            let x = setting.get(*axis);
            let mut label: Vec<String> = series
                .iter()
                .map(|(flag, value)| format!("{flag} {value}"))
                .collect();
            if *axis != Axis::NumDocuments {
                label.push(format!("{} {x}", axis.flag()));
            }
            label.push(format!("{} documents", setting.num_documents));
            tasks.push(Task {
                label: label.join(", "),
                x,
                series: series.as_ref().map(|(_, value)| value.clone()),
                capacities: capacities(args, &setting, &engines)?,
                cluster: setting.cluster(&args.trace.cluster),
                setting,
                engines,
            });
        }
    }
    Ok(tasks)
}

/// Engines resolved once per deployment (settings that differ only in the workload or the
/// cluster share them).
#[derive(Default)]
pub(super) struct EngineCache(HashMap<String, Arc<Engines>>);

impl EngineCache {
    /// The engines of `s`'s deployment, resolved the first time it is asked for.
    pub fn get(&mut self, args: &SweepArgs, s: &Setting) -> anyhow::Result<Arc<Engines>> {
        let key = s.deployment_key();
        if let Some(e) = self.0.get(&key) {
            return Ok(e.clone());
        }
        let e = Arc::new(resolve_engines(args, s)?);
        self.0.insert(key, e.clone());
        Ok(e)
    }
}

/// Both engines of `setting`'s deployment; errors name the flag.
pub(super) fn resolve_engines(args: &SweepArgs, s: &Setting) -> anyhow::Result<Engines> {
    let mut engine = args.engine.clone();
    let d = &mut engine.deployment;
    d.model = s.model.clone();
    d.gpu = s.gpu.clone();
    d.tensor_parallel_size = s.tensor_parallel_size;
    d.lmcache_cpu_gib = s.lmcache_cpu_gib;
    let resolved = engine.resolve(&[EngineKind::Vllm, EngineKind::Lmcache])?;
    let [(_, vllm), (_, lmcache)] = resolved.engines.as_slice() else {
        anyhow::bail!("invariant: two engines were asked for");
    };
    Ok(Engines {
        deployment: resolved.deployment.clone(),
        vllm: vllm.clone(),
        lmcache: lmcache.clone(),
        client: SimClient {
            output_len: args.output_len,
            template: super::super::predict::prompt_template(&s.model, args.api())?,
        },
        description: resolved.description,
    })
}

/// What `engines` hold, in documents of `setting`'s length.
fn capacities(
    args: &SweepArgs,
    setting: &Setting,
    engines: &Engines,
) -> anyhow::Result<Capacities> {
    let one = Workload::build(&args.workload(&Setting {
        num_documents: 1,
        ..setting.clone()
    }))
    .context("building a document")?;
    let plan = one.plan(1, 0);
    let spec = plan
        .rounds
        .iter()
        .find(|r| r.kind == RoundKind::Warmup)
        .and_then(|r| r.requests.first())
        .context("invariant: a warmup request")?;
    Ok(Capacities {
        tokens_per_document: spec.prompt_tokens + engines.client.template.added_tokens,
        gpu_kv_tokens: engines.vllm.config.gpu_kv_tokens,
        cpu_tier_tokens: engines.lmcache.cpu_tier_tokens(),
        instances: u32::try_from(setting.instances).unwrap_or(u32::MAX),
    })
}

/// About sixteen document counts: fractions of the GPU cache's and the CPU tier's
/// capacity, denser around each edge, from a quarter of the first to twice the second.
/// On several `instances` the same around the edges of all of them together too, where
/// a router that spreads the documents (cache-aware, or round robin in tile order) moves
/// the cliffs.
pub(super) fn default_counts(c: &Capacities, instances: usize) -> Vec<usize> {
    let edges = |scale: f64| {
        let gpu = c.gpu_documents() as f64 * scale;
        let cpu = c.cpu_documents() as f64 * scale;
        [0.25, 0.5, 0.75, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25]
            .iter()
            .map(move |f| f * gpu)
            .chain(
                [0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0]
                    .iter()
                    .map(move |f| f * cpu),
            )
    };
    let mut counts: Vec<usize> = edges(1.0)
        .chain(edges(instances as f64).filter(|_| instances > 1))
        .map(|v| v.round().max(1.0) as usize)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Every task in the simulator, spread over the machine's cores.
pub(super) fn simulate_all(args: &SweepArgs, tasks: &[&Task]) -> anyhow::Result<Vec<SweepPoint>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = tasks.len().div_ceil(threads).max(1);
    let results: Vec<anyhow::Result<SweepPoint>> = std::thread::scope(|scope| {
        let handles: Vec<_> = tasks
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|t| simulate_task(args, t))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sweep thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

fn simulate_task(args: &SweepArgs, t: &Task) -> anyhow::Result<SweepPoint> {
    let e = &t.engines;
    let workload = args.workload(&t.setting);
    let point = simulate(
        &workload,
        t.setting.max_inflight_requests,
        &e.client,
        (&e.vllm, &e.lmcache),
        &t.cluster,
    )?;
    Ok(SweepPoint {
        x: t.x.clone(),
        series: t.series.clone(),
        capacities: t.capacities,
        ..point
    })
}

/// `workload` with at most `max_inflight` in flight, on both engines (`vllm`, `lmcache`),
/// each alone or as `cluster` says: one point along the working set, with each
/// instance's share of each round on a cluster.
pub(crate) fn simulate(
    workload: &WorkloadConfig,
    max_inflight: usize,
    client: &SimClient,
    (vllm, lmcache): (&Scenario, &Scenario),
    cluster: &ClusterArgs,
) -> anyhow::Result<SweepPoint> {
    let num_documents = workload.num_documents;
    let plan = Workload::build(workload)
        .with_context(|| format!("building {num_documents} documents"))?
        .plan(max_inflight, 0);
    let mut shares = Vec::new();
    let mut arm = |scenario: &Scenario, name: &str| -> anyhow::Result<ArmPoint> {
        // Long Doc QA's prompts are text: a prefix-aware router tokenizes them first.
        let spec = cluster.spec(scenario, true);
        let (rounds, instances) = run_protocol_on_cluster(scenario, &plan, client, &spec)
            .with_context(|| format!("simulating {name} at {num_documents} documents"))?;
        if spec.instances > 1 {
            let names: Vec<String> = (1..=spec.instances).map(|k| format!("#{k}")).collect();
            shares.extend(instance_shares(name, &rounds, &instances, &names));
        }
        ArmPoint::of(&rounds, true).context("a round did not run")
    };
    let (vllm_point, lmcache_point) = (arm(vllm, "vllm")?, arm(lmcache, "lmcache")?);
    let working_set_tokens = plan
        .rounds
        .iter()
        .find(|r| r.kind == RoundKind::Warmup)
        .map_or(0, |r| {
            r.requests
                .iter()
                .map(|s| s.prompt_tokens + client.template.added_tokens)
                .sum()
        });
    Ok(SweepPoint {
        instance_counters: Vec::new(),
        x: AxisValue::Whole(num_documents as u64),
        series: None,
        num_documents,
        working_set_tokens,
        capacities: Capacities {
            tokens_per_document: working_set_tokens / num_documents.max(1) as u64,
            gpu_kv_tokens: vllm.config.gpu_kv_tokens,
            cpu_tier_tokens: lmcache.cpu_tier_tokens(),
            instances: u32::try_from(cluster.instance_count()).unwrap_or(u32::MAX),
        },
        vllm: Some(vllm_point),
        lmcache: Some(lmcache_point),
        instance_shares: shares,
    })
}

/// Each instance's share of the warmup and query rounds of `arm`: record `i` of round `r`
/// was served by instance `instances[r][i]`, named `names[k]`.
pub(super) fn instance_shares(
    arm: &str,
    rounds: &[ldqa_model::RoundRecord],
    instances: &[Vec<u32>],
    names: &[String],
) -> Vec<InstanceShare> {
    rounds
        .iter()
        .zip(instances)
        .filter(|(r, _)| matches!(r.kind, RoundKind::Warmup | RoundKind::Query))
        .flat_map(|(round, served_by)| {
            names.iter().enumerate().map(move |(k, name)| {
                let records = round
                    .requests
                    .iter()
                    .zip(served_by)
                    .filter(move |(_, &i)| i as usize == k)
                    .map(|(r, _)| r);
                InstanceShare::of(arm, round.kind, name, records)
            })
        })
        .collect()
}

/// The axes given to `args`, each with its values (one value: not swept).
pub(super) fn given_axes(args: &SweepArgs) -> Vec<(Axis, Vec<Value>)> {
    let counts = |v: &[usize]| v.iter().map(|&n| Value::Count(n)).collect::<Vec<_>>();
    let mut given = vec![
        (Axis::DocumentLength, counts(&args.document_length.0)),
        (
            Axis::MaxInflightRequests,
            counts(&args.max_inflight_requests.0),
        ),
    ];
    if let Some(r) = &args.num_documents {
        given.push((Axis::NumDocuments, counts(&r.0)));
    }
    if let Some(r) = &args.hit_miss_ratio {
        given.push((
            Axis::HitMissRatio,
            r.0.iter().map(|&r| Value::Ratio(r)).collect(),
        ));
    }
    if let Some(g) = &args.lmcache_cpu_gib {
        given.push((
            Axis::LmcacheCpuGib,
            g.0.iter().map(|&g| Value::Real(g)).collect(),
        ));
    }
    if let Some(r) = &args.tensor_parallel_size {
        given.push((Axis::TensorParallelSize, counts(&r.0)));
    }
    if let Some(names) = &args.gpu {
        given.push((
            Axis::Gpu,
            names.0.iter().cloned().map(Value::Name).collect(),
        ));
    }
    given.push((
        Axis::Model,
        args.model.0.iter().cloned().map(Value::Name).collect(),
    ));
    let cluster = &args.trace.cluster;
    given.push((Axis::Instances, counts(&cluster.instances)));
    given.push((
        Axis::Router,
        cluster.router.iter().map(|&r| Value::Router(r)).collect(),
    ));
    if !cluster.remote_gib.is_empty() {
        given.push((
            Axis::RemoteGib,
            cluster.remote_gib.iter().map(|&g| Value::Real(g)).collect(),
        ));
        given.push((
            Axis::RemoteGbps,
            cluster
                .remote_gbps
                .iter()
                .map(|&g| Value::Real(g))
                .collect(),
        ));
    }
    given
}

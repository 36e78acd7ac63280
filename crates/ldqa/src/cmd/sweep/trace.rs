//! `ldqa sweep --trace TRACE`: a recorded trace replayed in virtual time on both engines at
//! every value of one deployment axis (`--lmcache-cpu-gib`, `--gpu`,
//! `--tensor-parallel-size`, `--model`) or of the simulated cluster (`--instances`,
//! `--router`, `--remote-gib`): where LMCache pays off for this traffic. The
//! trace is the workload, so the Long Doc QA axes are refused. Prints a table and writes
//! `sweep_trace.json`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ldqa_metrics::AxisValue;
use ldqa_sim::trace::TraceOptions;
use ldqa_trace::{TraceFormat, TraceSource};
use serde::Serialize;

use super::axes::{Axis, Value};
use super::{points, SweepArgs};
use crate::cmd::engine_replay::EngineReplay;
use crate::cmd::predict_trace::ClusterArgs;
use crate::exit::ExitStatus;

/// One value of the axis: both engines' replays.
#[derive(Debug, Serialize)]
struct TracePoint {
    value: AxisValue,
    description: String,
    vllm: EngineReplay,
    lmcache: EngineReplay,
}

/// `sweep_trace.json`.
#[derive(Debug, Serialize)]
struct TraceSweep {
    schema: &'static str,
    schema_version: u32,
    trace: String,
    format: TraceFormat,
    speedup: f64,
    axis: &'static str,
    points: Vec<TracePoint>,
}

/// Every point's value, engines and cluster along `axis` (a deployment axis or one that
/// shapes the cluster), all resolved (their flags checked) before anything runs.
fn settings(
    args: &SweepArgs,
    (axis, values): &(Axis, Vec<Value>),
) -> anyhow::Result<Vec<(AxisValue, Arc<points::Engines>, ClusterArgs)>> {
    args.trace.cluster.validate()?;
    let base = args.base_setting();
    let mut engines = points::EngineCache::default();
    values
        .iter()
        .map(|v| {
            let s = base.with(*axis, v);
            let e = engines.get(args, &s)?;
            Ok((s.get(*axis), e, s.cluster(&args.trace.cluster)))
        })
        .collect()
}

/// Entry point of `ldqa sweep --trace`.
pub(super) fn run(args: &SweepArgs, path: &Path) -> anyhow::Result<ExitStatus> {
    let axis = swept_axis(args)?;
    args.trace.selection.validate()?;
    let sel = &args.trace.selection;
    let options = TraceOptions {
        speedup: sel.speedup,
        max_requests: sel.max_requests,
        time_window_s: sel.time_window,
        max_concurrency: None,
    };
    let trace = TraceSource::open(path, args.trace.trace_format)
        .with_context(|| format!("--trace {}", path.display()))?;
    let settings = settings(args, &axis)?;
    eprintln!(
        "Sweeping {} on {} values of {}",
        path.display(),
        settings.len(),
        axis.0.flag()
    );
    let replay = |(value, e, cluster): &(AxisValue, Arc<points::Engines>, ClusterArgs)| -> anyhow::Result<TracePoint> {
        let arm = |s: &ldqa_sim::Scenario, name: &str| -> anyhow::Result<EngineReplay> {
            cluster
                .replay(name, s, &trace, &options)
                .with_context(|| format!("at {value}"))
        };
        Ok(TracePoint {
            value: value.clone(),
            description: e.description.clone(),
            vllm: arm(&e.vllm, "vllm")?,
            lmcache: arm(&e.lmcache, "lmcache")?,
        })
    };
    let points = in_parallel(&settings, replay)?;
    let sweep = TraceSweep {
        schema: "ldqa-sweep-trace",
        schema_version: 1,
        trace: path.display().to_string(),
        format: trace.format(),
        speedup: sel.speedup,
        axis: axis.0.flag(),
        points,
    };
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let json_path = args.output_dir.join("sweep_trace.json");
    let json = serde_json::to_string_pretty(&sweep)? + "\n";
    ldqa_report::write_atomically(&json_path, json.as_bytes())
        .with_context(|| format!("writing {}", json_path.display()))?;
    crate::stdout::write(&if args.json { json } else { table(&sweep) })?;
    eprintln!("wrote {}", json_path.display());
    Ok(ExitStatus::Success)
}

/// The one axis given several values: a deployment axis, or one that shapes the cluster
/// (`--instances`, `--router`, `--remote-gib`); the Long Doc QA axes are refused.
fn swept_axis(args: &SweepArgs) -> anyhow::Result<(Axis, Vec<Value>)> {
    if args.num_documents.is_some() || args.hit_miss_ratio.is_some() {
        anyhow::bail!(
            "--trace replaces the Long Doc QA workload: leave out --num-documents and --hit-miss-ratio"
        );
    }
    let given = points::given_axes(args);
    if let Some((a, _)) = given
        .iter()
        .find(|(a, v)| !(a.changes_deployment() || a.shapes_the_cluster()) && v.len() > 1)
    {
        anyhow::bail!(
            "--trace replaces the Long Doc QA workload: {} cannot be swept with it",
            a.flag()
        );
    }
    let mut swept: Vec<(Axis, Vec<Value>)> = given
        .into_iter()
        .filter(|(a, v)| (a.changes_deployment() || a.shapes_the_cluster()) && v.len() > 1)
        .collect();
    match swept.len() {
        1 => Ok(swept.remove(0)),
        0 => anyhow::bail!(
            "give the axis to sweep the trace along several values: --lmcache-cpu-gib 30,66,120, --gpu h100-80gb,h200, --tensor-parallel-size 1,2, --model A,B, --instances 1,2,4, --router round-robin,cache-aware, --remote-gib 0,64,256 or --remote-gbps 25,100,400"
        ),
        _ => anyhow::bail!(
            "--trace sweeps one axis at a time: {} were given several values",
            swept
                .iter()
                .map(|(a, _)| a.flag())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// `f` of every item, spread over the machine's cores, in order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let results: Vec<anyhow::Result<R>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sweep thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

fn table(s: &TraceSweep) -> String {
    let mut out = format!(
        "Trace {} ({}), {} requests, arrivals ×{}, along {} — simulated seconds\n",
        s.trace,
        s.format,
        s.points.first().map_or(0, |p| p.vllm.requests()),
        s.speedup,
        s.axis
    );
    out.push_str(&format!(
        "{:>16} │ {:>10} {:>10} │ {:>10} {:>10} │ {:>9} │ {:>9} {:>9} {:>14}\n",
        s.axis.trim_start_matches("--"),
        "vLLM TTFT",
        "p90",
        "LMCache",
        "p90",
        "TTFT gain",
        "vLLM hit",
        "LMC hit",
        "from CPU tier"
    ));
    for p in &s.points {
        let (v, l) = (&p.vllm, &p.lmcache);
        out.push_str(&format!(
            "{:>16} │ {:>9.3}s {:>9.3}s │ {:>9.3}s {:>9.3}s │ {:>8.2}× │ {:>7.1} % {:>7.1} % {:>14}\n",
            p.value.to_string(),
            v.mean_ttft_s(),
            v.p90_ttft_s(),
            l.mean_ttft_s(),
            l.p90_ttft_s(),
            v.mean_ttft_s() / l.mean_ttft_s(),
            v.hit_rate() * 100.0,
            l.hit_rate() * 100.0,
            l.cpu_hit_tokens().unwrap_or(0),
        ));
    }
    out
}

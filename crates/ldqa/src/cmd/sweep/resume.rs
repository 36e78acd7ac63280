//! `--resume`: the points an earlier run of the same sweep left in `sweep.json`, kept when
//! its description, workload and axes are this sweep's, so that only the others run.

use std::path::Path;

use anyhow::Context;
use ldqa_metrics::SweepPoint;
use ldqa_report::sweep::{SweepReport, SWEEP_SCHEMA, SWEEP_SCHEMA_VERSION};

use super::points::Task;

/// The points of `dir`'s `sweep.json` (none when there is none); an error when it holds
/// another sweep, saying what differs.
pub(super) fn previous_points(dir: &Path, this: &SweepReport) -> anyhow::Result<Vec<SweepPoint>> {
    let path = dir.join("sweep.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("--resume: no {} yet, starting afresh", path.display());
            return Ok(Vec::new());
        }
        Err(e) => return Err(e).with_context(|| format!("--resume: reading {}", path.display())),
    };
    let old: SweepReport = serde_json::from_str(&text)
        .with_context(|| format!("--resume: {} is not a sweep.json", path.display()))?;
    anyhow::ensure!(
        old.schema == SWEEP_SCHEMA && old.schema_version == SWEEP_SCHEMA_VERSION,
        "--resume: {} is {} version {}, this ldqa writes {SWEEP_SCHEMA} version {SWEEP_SCHEMA_VERSION}",
        path.display(),
        old.schema,
        old.schema_version
    );
    let differs = [
        ("description", old.description != this.description),
        ("workload", old.workload != this.workload),
        (
            "axes",
            old.axis != this.axis || old.series_axis != this.series_axis,
        ),
    ]
    .into_iter()
    .filter(|(_, d)| *d)
    .map(|(what, _)| what)
    .collect::<Vec<_>>();
    anyhow::ensure!(
        differs.is_empty(),
        "--resume: {} is another sweep (its {} differ from this one's); choose another --output-dir, or drop --resume to start afresh",
        path.display(),
        differs.join(", ")
    );
    Ok(old.points)
}

/// The tasks still to run, and the previous points that are some task's (the others go).
pub(super) fn split(tasks: &[Task], previous: Vec<SweepPoint>) -> (Vec<&Task>, Vec<SweepPoint>) {
    let kept: Vec<SweepPoint> = previous
        .into_iter()
        .filter(|p| tasks.iter().any(|t| t.done_in(p)))
        .collect();
    let todo = tasks
        .iter()
        .filter(|t| !kept.iter().any(|p| t.done_in(p)))
        .collect();
    (todo, kept)
}

/// `kept` and `fresh` points in the order of `tasks` (a task with neither is left out).
pub(super) fn in_task_order(
    tasks: &[Task],
    kept: Vec<SweepPoint>,
    fresh: Vec<SweepPoint>,
) -> Vec<SweepPoint> {
    let mut all: Vec<SweepPoint> = kept.into_iter().chain(fresh).collect();
    let mut ordered = Vec::with_capacity(all.len());
    for t in tasks {
        if let Some(i) = all.iter().position(|p| t.done_in(p)) {
            ordered.push(all.swap_remove(i));
        }
    }
    ordered
}

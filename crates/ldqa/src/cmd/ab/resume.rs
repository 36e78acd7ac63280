//! `ab --resume`: the finished engine runs already in the output folder, reused instead of
//! measured again, but only when they were measured with the configuration asked for now.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use ldqa_report::RunResult;
use serde_json::Value;

use super::engine::{engine_config, result_path};
use super::plan::AbPlan;
use super::{engine_dir, AbArgs};

/// Keys of an engine's recorded configuration that do not change what it measures: the
/// server's URL (a free port each time), what the server announced about itself (read
/// back after the run, so never in a new plan), the number of repeats, the gates, and the
/// two commands (each result is compared on its own `server_command`).
const NOT_MEASURED: &[&str] = &[
    "base_url",
    "server_gpu_kv_tokens",
    "trials",
    "expected_ttft_gain",
    "expected_latency_gain",
    "baseline_cmd",
    "lmcache_cmd",
];

/// Stored results by engine folder.
#[derive(Default)]
pub struct StoredRuns {
    runs: HashMap<PathBuf, (String, RunResult)>,
}

impl StoredRuns {
    /// Reads every `result.json` this plan would write, before any server starts. A result
    /// measured with another configuration is an error that names the first field that
    /// differs; an unreadable one is measured again.
    pub fn load(args: &AbArgs, plan: &AbPlan) -> anyhow::Result<Self> {
        let mut runs = HashMap::new();
        for (engine, command) in [("baseline", &plan.baseline), ("lmcache", &plan.lmcache)] {
            let wanted = crate::recorded::to_value(&engine_config(&plan.config, engine, command));
            for i in 0..args.trials {
                let dir = engine_dir(&args.output_dir, engine, i, args.trials);
                let path = result_path(&dir);
                if !path.exists() {
                    continue;
                }
                let stored = match ldqa_report::read_json(&path) {
                    Ok(stored) => stored,
                    Err(e) => {
                        eprintln!("warning: measuring {engine} again: {}: {e}", path.display());
                        continue;
                    }
                };
                refuse_other_config(&path, &stored.config, &wanted)?;
                runs.insert(dir, (engine.to_string(), stored));
            }
        }
        Ok(Self { runs })
    }

    /// The stored result of the run in `dir`, if any (said on stderr).
    pub fn take(&mut self, dir: &Path) -> Option<RunResult> {
        let (engine, result) = self.runs.remove(dir)?;
        eprintln!("[{engine}] reusing {}", result_path(dir).display());
        Some(result)
    }
}

fn refuse_other_config(path: &Path, stored: &Value, wanted: &Value) -> anyhow::Result<()> {
    if let Some((field, was, now)) = first_difference(stored, wanted, "") {
        bail!(
            "--resume: {} was measured with {field} = {was}, but this run asks for {now}; \
             measure again without --resume, or use another --output-dir",
            path.display()
        );
    }
    Ok(())
}

/// The first field, as a dotted path, whose value differs between `stored` and `wanted`
/// (keys in [`NOT_MEASURED`] aside), with both values; a missing key reads as `null`.
fn first_difference(stored: &Value, wanted: &Value, path: &str) -> Option<(String, Value, Value)> {
    match (stored, wanted) {
        (Value::Object(s), Value::Object(w)) => {
            let mut keys: Vec<&String> = w.keys().chain(s.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| !(path.is_empty() && NOT_MEASURED.contains(&k.as_str())))
                .find_map(|k| {
                    let field = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let (s, w) = (s.get(k), w.get(k));
                    first_difference(s.unwrap_or(&Value::Null), w.unwrap_or(&Value::Null), &field)
                })
        }
        _ if stored == wanted => None,
        _ => Some((path.to_string(), stored.clone(), wanted.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_field_that_differs_ignoring_what_is_not_measured() {
        let stored = json!({"model": "m", "base_url": "http://a", "trials": 1,
                            "workload": {"num_documents": 2, "document_length": 200}});
        let same = json!({"model": "m", "base_url": "http://b", "trials": 3,
                          "workload": {"num_documents": 2, "document_length": 200}});
        assert_eq!(first_difference(&stored, &same, ""), None);
        let more = json!({"model": "m", "workload": {"num_documents": 3, "document_length": 200}});
        assert_eq!(
            first_difference(&stored, &more, ""),
            Some(("workload.num_documents".into(), json!(2), json!(3)))
        );
        let added = json!({"model": "m", "new_knob": true,
                           "workload": {"num_documents": 2, "document_length": 200}});
        assert_eq!(
            first_difference(&stored, &added, ""),
            Some(("new_knob".into(), Value::Null, json!(true)))
        );
    }
}

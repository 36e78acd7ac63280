//! What `recommend`'s plan is predicted to gain: the planned workload (and the user's own,
//! `--num-documents`) simulated on vLLM and on vLLM + LMCache with the planned deployment,
//! the same way `ldqa sweep` simulates a point.

use ldqa_metrics::{ArmPoint, SweepPoint, WIN_FACTOR};
use ldqa_recommend::{Plan, PlanInput};
use ldqa_sim::protocol::SimClient;
use ldqa_sim::scenario::{self, EngineMode};
use ldqa_workload::{RepeatMode, WorkloadConfig};
use serde_json::json;

use super::predict_trace::{ClusterArgs, RouterArg};

/// One simulated workload and what it shows.
pub(crate) struct Predicted {
    pub point: SweepPoint,
    vllm: ArmPoint,
    lmcache: ArmPoint,
    /// Its prompt tokens fit vLLM's GPU prefix cache (the instances' together).
    pub fits_gpu: bool,
    /// The simulated cluster, in words (none: one instance).
    on: Option<String>,
}

impl Predicted {
    fn verdict(&self) -> &'static str {
        if self.fits_gpu {
            "no_benefit_fits_gpu"
        } else if self.ttft_gain() >= WIN_FACTOR {
            "gain"
        } else {
            "no_benefit"
        }
    }

    fn ttft_gain(&self) -> f64 {
        self.vllm.query.mean_ttft_s / self.lmcache.query.mean_ttft_s
    }

    fn round_gain(&self) -> f64 {
        self.vllm.query.round_time_s / self.lmcache.query.round_time_s
    }

    /// A line for people.
    pub fn text(&self, what: &str) -> String {
        let p = &self.point;
        let n = p.num_documents;
        let on = self
            .on
            .as_ref()
            .map_or(String::new(), |c| format!(" on {c}"));
        let caches = match p.capacities.instances {
            1 => "vLLM's GPU prefix cache",
            _ => "the instances' GPU prefix caches",
        };
        let tiers = match p.capacities.instances {
            1 => "LMCache's CPU tier",
            _ => "the instances' CPU tiers",
        };
        let q = &self.lmcache.query;
        let served_from_a_tier = q.prefix.cpu_hit_tokens * 2 >= q.prompt_tokens();
        match self.verdict() {
            "no_benefit_fits_gpu" => format!(
                "{what} ({n} documents, {} tokens{on}): no benefit expected: the working set fits {caches}, which serve the query round by themselves; LMCache costs +{:.0} % TTFT\n",
                p.working_set_tokens,
                p.ttft_cost().unwrap_or(0.0) * 100.0
            ),
            "gain" => format!(
                "{what} ({n} documents{on}): query-round mean TTFT {:.3} s with vLLM, {:.3} s with LMCache ({:.1}× faster); query round time {:.2}× faster\n",
                self.vllm.query.mean_ttft_s,
                self.lmcache.query.mean_ttft_s,
                self.ttft_gain(),
                self.round_gain()
            ),
            _ if served_from_a_tier => format!(
                "{what} ({n} documents{on}): no benefit expected: LMCache's tiers serve the query round, but loading a document takes about as long as computing it (predicted query TTFT gain {:.2}×)\n",
                self.ttft_gain()
            ),
            _ => format!(
                "{what} ({n} documents{on}): no benefit expected: the working set overflows {tiers} too (predicted query TTFT gain {:.2}×)\n",
                self.ttft_gain()
            ),
        }
    }

    /// The JSON object.
    pub fn json(&self) -> serde_json::Value {
        let p = &self.point;
        json!({
            "num_documents": p.num_documents,
            "working_set_tokens": p.working_set_tokens,
            "verdict": self.verdict(),
            "vllm_query_mean_ttft_s": self.vllm.query.mean_ttft_s,
            "lmcache_query_mean_ttft_s": self.lmcache.query.mean_ttft_s,
            "query_ttft_gain": self.ttft_gain(),
            "query_round_gain": self.round_gain(),
            "on": self.on,
        })
    }
}

/// The planned deployment running `num_documents` documents of the planned workload on
/// both engines (the CPU tier as planned), in the simulator: on one instance, or with
/// `on_the_cluster` on the planned instances behind vllm-router's cache-aware policy (the
/// router the plan prints), sharing the planned remote tier.
pub(crate) fn predict(
    input: &PlanInput,
    plan: &Plan,
    model_arg: &str,
    num_documents: usize,
    on_the_cluster: bool,
) -> anyhow::Result<Predicted> {
    let d = &input.deployment;
    let vllm = scenario::build(d, EngineMode::Vllm)?;
    let lmcache = scenario::build(
        d,
        EngineMode::Lmcache {
            cpu_gib_per_rank: Some(plan.offload.max_local_cpu_size_gib as f64),
        },
    )?;
    let w = &input.workload;
    let workload = WorkloadConfig {
        num_documents,
        document_length: usize::try_from(w.document_length)?,
        repeat_count: 1,
        repeat_mode: RepeatMode::Tile,
        ..WorkloadConfig::default()
    };
    let client = SimClient {
        output_len: u32::try_from(w.output_len)?,
        template: super::predict::prompt_template(model_arg, ldqa_model::Api::Chat)?,
    };
    let inflight = usize::try_from(w.max_inflight_requests)?;
    let cluster = match on_the_cluster {
        true => ClusterArgs::of(
            input.instances as usize,
            RouterArg::CacheAware,
            plan.remote.map(|r| r.gib as f64),
        ),
        false => ClusterArgs::of(1, RouterArg::RoundRobin, None),
    };
    let point = super::sweep::simulate(&workload, inflight, &client, (&vllm, &lmcache), &cluster)?;
    let (Some(v), Some(l)) = (point.vllm, point.lmcache) else {
        anyhow::bail!("invariant: both engines were simulated");
    };
    let instances = u64::from(point.capacities.instances);
    Ok(Predicted {
        on: cluster.describe(),
        fits_gpu: point.working_set_tokens <= vllm.config.gpu_kv_tokens * instances,
        point,
        vllm: v,
        lmcache: l,
    })
}

//! The sweep on running servers: at every point each server's prefix cache is emptied
//! (`POST /reset_prefix_cache`), then the point's plan runs against it as `ldqa run` would
//! send it. Points run one after the other (a server is one machine); each is saved as it
//! finishes, and Ctrl-C stops the sweep after what finished, which is kept.

use anyhow::Context;
use ldqa_loadgen::{run_protocol, Cancel, Client, NoObserver, ProtocolOptions};
use ldqa_metrics::{ArmPoint, SweepPoint};
use ldqa_model::Api;
use ldqa_workload::Workload;

use super::axes::Setting;
use super::points::Task;
use super::SweepArgs;

/// The running servers standing in for one arm (several: each round spread over them).
pub(super) struct Server {
    clients: Vec<Client>,
    /// An `ldqa serve --time-scale F` runs F times faster than the wall clock: its times
    /// are scaled back to simulated seconds, as `ldqa run` reports them.
    time_scale: f64,
}

impl Server {
    /// Connects to `urls` (OpenAI base URLs) and finds the model the first serves.
    pub async fn connect(urls: &[String], args: &SweepArgs) -> anyhow::Result<Server> {
        let endpoints = crate::cmd::base_url_endpoints(urls)?;
        let api = if args.completions {
            Api::Completions
        } else {
            Api::Chat
        };
        let (clients, _) = crate::cmd::clients_for(endpoints, api, args.output_len, None).await?;
        let listed = clients[0].server_models().await?;
        Ok(Server {
            clients,
            time_scale: listed.time_scale.unwrap_or(1.0),
        })
    }

    /// One point: the cache emptied, then its warmup and query rounds. `lmcache`: the
    /// server has LMCache's tier too (its cached tokens may come from either).
    async fn measure(
        &self,
        args: &SweepArgs,
        setting: &Setting,
        lmcache: bool,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<ArmPoint>> {
        for client in &self.clients {
            client.reset_prefix_cache().await?;
        }
        let num_documents = setting.num_documents;
        let workload = Workload::build(&args.workload(setting))
            .with_context(|| format!("building {num_documents} documents"))?;
        let plan = workload.plan(setting.max_inflight_requests, 0);
        let mut outcome = run_protocol(
            &self.clients,
            &plan,
            &workload,
            &ProtocolOptions::default(),
            &NoObserver,
            cancel,
        )
        .await;
        if outcome.rounds.iter().any(|r| r.interrupted) {
            return Ok(None);
        }
        if let Some(failed) = outcome
            .rounds
            .iter()
            .flat_map(|r| &r.requests)
            .find_map(|r| r.failure.as_ref())
        {
            anyhow::bail!(
                "a request failed at {num_documents} documents ({}): {}",
                failed.kind,
                failed.message
            );
        }
        for round in &mut outcome.rounds {
            round.scale_time(self.time_scale);
        }
        Ok(ArmPoint::of(&outcome.rounds, !lmcache))
    }
}

/// Every task on the servers given (`None` for an arm without one), until Ctrl-C; `save`
/// is called with the points so far after each.
pub(super) async fn measure_points(
    args: &SweepArgs,
    tasks: &[&Task],
    vllm: Option<&Server>,
    lmcache: Option<&Server>,
    cancel: &Cancel,
    save: &(dyn Fn(&[SweepPoint]) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<Vec<SweepPoint>> {
    let mut points = Vec::new();
    for task in tasks {
        let mut arms = [None, None];
        for ((slot, server), is_lmcache) in arms.iter_mut().zip([vllm, lmcache]).zip([false, true])
        {
            if let Some(server) = server {
                match server
                    .measure(args, &task.setting, is_lmcache, cancel)
                    .await?
                {
                    Some(arm) => *slot = Some(arm),
                    None => return Ok(points),
                }
            }
        }
        let working_set_tokens = arms
            .iter()
            .flatten()
            .next()
            .map_or(0, |a| a.warmup.prompt_tokens());
        let arm_names: Vec<&str> = [(vllm, "vLLM"), (lmcache, "LMCache")]
            .into_iter()
            .filter_map(|(s, name)| s.map(|_| name))
            .collect();
        eprintln!(
            "sweep: {} measured on {}",
            task.label(),
            arm_names.join(" and ")
        );
        let [vllm, lmcache] = arms;
        points.push(SweepPoint {
            x: task.x.clone(),
            series: task.series.clone(),
            num_documents: task.setting.num_documents,
            working_set_tokens,
            capacities: task.capacities,
            vllm,
            lmcache,
        });
        save(&points)?;
        if cancel.is_cancelled() {
            break;
        }
    }
    Ok(points)
}

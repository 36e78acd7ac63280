//! The sweep on running servers: at every point each server's prefix cache is emptied
//! (`POST /reset_prefix_cache`), then the point's plan runs against it as `ldqa run` would
//! send it. Points run one after the other (a server is one machine); each is saved as it
//! finishes, and Ctrl-C stops the sweep after what finished, which is kept.

use anyhow::Context;
use ldqa_loadgen::{
    run_protocol, Cancel, Client, ClientConfig, Endpoint, NoObserver, ProtocolOptions,
};
use ldqa_metrics::{ArmPoint, SweepPoint};
use ldqa_model::Api;
use ldqa_workload::Workload;

use super::axes::Setting;
use super::points::Task;
use super::SweepArgs;

/// A running server standing in for one arm.
pub(super) struct Server {
    client: Client,
}

impl Server {
    /// Connects to `url` (an OpenAI base URL) and finds the model it serves.
    pub async fn connect(url: &str, args: &SweepArgs) -> anyhow::Result<Server> {
        let endpoint = Endpoint::new(url, std::env::var("OPENAI_API_KEY").ok())?;
        let api = if args.completions {
            Api::Completions
        } else {
            Api::Chat
        };
        let mut config = ClientConfig::new(endpoint.clone(), "auto".into(), api, args.output_len);
        let listed = Client::new(config.clone())?.server_models().await?;
        config.model = listed
            .ids
            .first()
            .cloned()
            .with_context(|| format!("{} lists no models", endpoint.url("models")))?;
        Ok(Server {
            client: Client::new(config)?,
        })
    }

    /// One point: the cache emptied, then its warmup and query rounds.
    async fn measure(
        &self,
        args: &SweepArgs,
        setting: &Setting,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<ArmPoint>> {
        self.client.reset_prefix_cache().await?;
        let num_documents = setting.num_documents;
        let workload = Workload::build(&args.workload(setting))
            .with_context(|| format!("building {num_documents} documents"))?;
        let plan = workload.plan(setting.max_inflight_requests, 0);
        let outcome = run_protocol(
            &self.client,
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
        Ok(ArmPoint::of(&outcome.rounds))
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
    save: impl Fn(&[SweepPoint]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<SweepPoint>> {
    let mut points = Vec::new();
    for task in tasks {
        let mut arms = [None, None];
        for (slot, server) in arms.iter_mut().zip([vllm, lmcache]) {
            if let Some(server) = server {
                match server.measure(args, &task.setting, cancel).await? {
                    Some(arm) => *slot = Some(arm),
                    None => return Ok(points),
                }
            }
        }
        let working_set_tokens = arms.iter().flatten().next().map_or(0, |a| {
            let p = a.warmup.prefix;
            p.gpu_hit_tokens + p.cpu_hit_tokens + p.computed_tokens
        });
        eprintln!("sweep: {} measured", task.label());
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

//! The sweep on running servers: at every point each server's prefix cache is emptied
//! (`POST /reset_prefix_cache`; behind a router, each instance given by its metrics URL), then the point's plan runs against it as `ldqa run` would
//! send it. Points run one after the other (a server is one machine); each is saved as it
//! finishes, and Ctrl-C stops the sweep after what finished, which is kept.

use anyhow::Context;
use ldqa_loadgen::{run_protocol, Cancel, Client, NoObserver, ProtocolOptions};
use ldqa_metrics::{ArmPoint, InstanceRound, InstanceShare, SweepPoint};
use ldqa_model::Api;
use ldqa_workload::Workload;

use super::axes::Setting;
use super::points::Task;
use super::SweepArgs;
use crate::cmd::instance_counters::InstanceCounters;

/// The running servers standing in for one arm (several: each round spread over them).
pub(super) struct Server {
    clients: Vec<Client>,
    /// Their base URLs (naming each one's share of a round).
    urls: Vec<String>,
    /// The instances' Prometheus endpoints, read around each round.
    metrics_urls: Vec<String>,
    /// Behind one router, the instances themselves (at their metrics URLs' origins), whose
    /// prefix caches are emptied one by one: the router passes a reset to one of them.
    instances: Vec<Client>,
    /// An `ldqa serve --time-scale F` runs F times faster than the wall clock: its times
    /// are scaled back to simulated seconds, as `ldqa run` reports them.
    time_scale: f64,
}

impl Server {
    /// Connects to `urls` (OpenAI base URLs) and finds the model the first serves.
    pub async fn connect(
        urls: &[String],
        metrics_urls: Vec<String>,
        args: &SweepArgs,
    ) -> anyhow::Result<Server> {
        let endpoints = crate::cmd::base_url_endpoints(urls)?;
        let api = if args.completions {
            Api::Completions
        } else {
            Api::Chat
        };
        let (clients, _, time_scale) =
            crate::cmd::clients_for(endpoints, api, args.output_len, None).await?;
        let behind_a_router = clients.len() == 1 && metrics_urls.len() > 1;
        let instances = match behind_a_router {
            false => Vec::new(),
            true => metrics_urls
                .iter()
                .map(|url| {
                    let endpoint = ldqa_loadgen::Endpoint::new(url, None)?;
                    Ok(Client::new(ldqa_loadgen::ClientConfig {
                        endpoint,
                        ..clients[0].config().clone()
                    })?)
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Server {
            clients,
            urls: urls.to_vec(),
            metrics_urls,
            instances,
            time_scale,
        })
    }

    /// One point: the cache emptied, then its warmup and query rounds, and each
    /// instance's counters over them. `lmcache`: the server has LMCache's tier too (its
    /// cached tokens may come from either).
    async fn measure(
        &self,
        args: &SweepArgs,
        setting: &Setting,
        lmcache: bool,
        cancel: &Cancel,
    ) -> anyhow::Result<Option<Measured>> {
        for client in self.clients.iter().chain(&self.instances) {
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
            &ProtocolOptions {
                metrics_urls: self.metrics_urls.clone(),
            },
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
        let arm = if lmcache { "lmcache" } else { "vllm" };
        let counters = outcome
            .reported()
            .flat_map(|round| {
                let each = round
                    .evidence
                    .as_ref()
                    .map_or(&[][..], |e| &e.instances[..]);
                self.metrics_urls.iter().zip(each).map(|(url, e)| {
                    let c = InstanceCounters::from_evidence(url.clone(), Some(e));
                    InstanceRound {
                        arm: arm.to_owned(),
                        round: round.kind.as_str().to_owned(),
                        metrics_url: c.metrics_url,
                        requests: c.requests,
                        prefix_cache_hits_tokens: c.prefix_cache_hits_tokens,
                    }
                })
            })
            .collect();
        let shares = self.shares(arm, &outcome.rounds);
        Ok(ArmPoint::of(&outcome.rounds, !lmcache).map(|a| Measured {
            arm: a,
            counters,
            shares,
        }))
    }

    /// On several servers, each one's share of each round: request `i` went to server
    /// `i mod N`.
    fn shares(&self, arm: &str, rounds: &[ldqa_model::RoundRecord]) -> Vec<InstanceShare> {
        let n = self.clients.len();
        if n < 2 {
            return Vec::new();
        }
        let served_by: Vec<Vec<u32>> = rounds
            .iter()
            .map(|r| {
                r.requests
                    .iter()
                    .map(|q| crate::cmd::per_server::client_side_turn(q, n) as u32)
                    .collect()
            })
            .collect();
        super::points::instance_shares(arm, rounds, &served_by, &self.urls)
    }
}

/// One arm at one point on its servers.
struct Measured {
    arm: ArmPoint,
    /// Each instance's counters per round (with metrics URLs).
    counters: Vec<InstanceRound>,
    /// Each server's share of each round (several servers).
    shares: Vec<InstanceShare>,
}

/// A line per server and round on stderr: what the client saw of it (in sweep.json).
fn print_shares(shares: &[InstanceShare]) {
    for s in shares {
        let failed = match (s.failed, s.shed) {
            (0, _) => String::new(),
            (f, 0) => format!(", {f} failed"),
            (f, shed) => format!(", {f} failed ({shed} shed)"),
        };
        eprintln!(
            "  {} {} round, {}: {} requests, mean TTFT {:.3} s, {} of {} prompt tokens cached{failed}",
            s.arm, s.round, s.instance, s.requests, s.mean_ttft_s, s.cached_tokens, s.prompt_tokens
        );
    }
}

/// A line per instance and round on stderr (what sweep.json keeps).
fn print_instances(counters: &[InstanceRound]) {
    let known = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let mut k = 0;
    let mut last = None;
    for c in counters {
        let group = Some((&c.arm, &c.round));
        k = if group == last { k + 1 } else { 1 };
        last = group;
        eprintln!(
            "  {} {} round, instance {k}: {} requests, {} prompt tokens hit its prefix cache ({})",
            c.arm,
            c.round,
            known(c.requests),
            known(c.prefix_cache_hits_tokens),
            c.metrics_url
        );
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
        let mut instance_counters = Vec::new();
        let mut instance_shares = Vec::new();
        for ((slot, server), is_lmcache) in arms.iter_mut().zip([vllm, lmcache]).zip([false, true])
        {
            if let Some(server) = server {
                match server
                    .measure(args, &task.setting, is_lmcache, cancel)
                    .await?
                {
                    Some(m) => {
                        *slot = Some(m.arm);
                        instance_counters.extend(m.counters);
                        instance_shares.extend(m.shares);
                    }
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
        print_shares(&instance_shares);
        print_instances(&instance_counters);
        let [vllm, lmcache] = arms;
        points.push(SweepPoint {
            x: task.x.clone(),
            series: task.series.clone(),
            num_documents: task.setting.num_documents,
            working_set_tokens,
            capacities: task.capacities,
            vllm,
            lmcache,
            instance_counters,
            instance_shares,
        });
        save(&points)?;
        if cancel.is_cancelled() {
            break;
        }
    }
    Ok(points)
}

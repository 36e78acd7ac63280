//! One module per subcommand: its clap arguments and its `run`.

pub mod ab;
#[cfg(test)]
mod agreement_tests;
pub mod calibrate;
pub mod catalog;
pub mod compare;
pub mod deployment_args;
pub mod engine_args;
mod engine_replay;
mod instance_counters;
mod kv_events_config;
pub mod multi_round;
mod per_server;
pub mod predict;
pub mod predict_trace;
pub mod recommend;
mod recommend_gain;
pub mod replay;
pub mod report;
pub mod run;
pub mod run_args;
pub mod serve;
pub mod sweep;
pub mod trace;

/// The model to name in requests: `given`, or the first the server at `config` lists.
async fn model_and_clock(
    config: &ldqa_loadgen::ClientConfig,
    given: Option<&str>,
) -> anyhow::Result<(String, f64)> {
    use anyhow::Context;
    let listed = ldqa_loadgen::Client::new(config.clone())?
        .server_models()
        .await;
    // An `ldqa serve --time-scale` runs its own clock; any other server the wall's.
    let time_scale = listed
        .as_ref()
        .ok()
        .and_then(|m| m.time_scale)
        .filter(|&s| s > 0.0)
        .unwrap_or(1.0);
    let model = match given {
        Some(m) => m.to_string(),
        None => listed
            .context("asking the server for its models (--model to name one)")?
            .ids
            .first()
            .cloned()
            .context("the server lists no models (--model to name one)")?,
    };
    Ok((model, time_scale))
}

/// The endpoints of `--base-url` given once or more, with `OPENAI_API_KEY`; a bad URL is
/// an error naming it.
pub(crate) fn base_url_endpoints(urls: &[String]) -> anyhow::Result<Vec<ldqa_loadgen::Endpoint>> {
    use anyhow::Context;
    let key = std::env::var("OPENAI_API_KEY").ok();
    urls.iter()
        .map(|url| {
            ldqa_loadgen::Endpoint::new(url, key.clone())
                .with_context(|| format!("--base-url {url}"))
        })
        .collect()
}

/// A client per endpoint, all speaking `api`, asking `output_len` tokens where a request
/// does not say, and naming the same model: `given`, or the first the first endpoint lists;
/// and the first endpoint's time scale (simulated seconds per wall second, 1 unless it is
/// a time-scaled `ldqa serve`).
pub(crate) async fn clients_for(
    endpoints: Vec<ldqa_loadgen::Endpoint>,
    api: ldqa_model::Api,
    output_len: u32,
    given: Option<&str>,
) -> anyhow::Result<(Vec<ldqa_loadgen::Client>, String, f64)> {
    use anyhow::Context;
    let first = endpoints
        .first()
        .cloned()
        .context("invariant: at least one --base-url")?;
    let mut config = ldqa_loadgen::ClientConfig::new(first, String::new(), api, output_len);
    let (model, time_scale) = model_and_clock(&config, given).await?;
    config.model = model;
    let clients = endpoints
        .into_iter()
        .map(|endpoint| {
            ldqa_loadgen::Client::new(ldqa_loadgen::ClientConfig {
                endpoint,
                ..config.clone()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((clients, config.model, time_scale))
}

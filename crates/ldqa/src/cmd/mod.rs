//! One module per subcommand: its clap arguments and its `run`.

pub mod ab;
#[cfg(test)]
mod agreement_tests;
pub mod calibrate;
pub mod catalog;
pub mod compare;
pub mod deployment_args;
pub mod engine_args;
mod instance_counters;
pub mod multi_round;
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
pub(crate) async fn model_to_send(
    config: &ldqa_loadgen::ClientConfig,
    given: Option<&str>,
) -> anyhow::Result<String> {
    use anyhow::Context;
    if let Some(m) = given {
        return Ok(m.to_string());
    }
    ldqa_loadgen::Client::new(config.clone())?
        .server_models()
        .await
        .context("asking the server for its models (--model to name one)")?
        .ids
        .first()
        .cloned()
        .context("the server lists no models (--model to name one)")
}

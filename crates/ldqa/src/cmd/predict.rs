//! `ldqa predict` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {}

pub fn run(_args: PredictArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa predict` is not built yet")
}

//! `ldqa recommend` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa recommend`.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {}

pub fn run(_args: RecommendArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa recommend` is not built yet")
}

//! `ldqa serve` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa serve` is not built yet")
}

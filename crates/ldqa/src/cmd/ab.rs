//! `ldqa ab` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa ab`.
#[derive(Debug, clap::Args)]
pub struct AbArgs {}

pub fn run(_args: AbArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa ab` is not built yet")
}

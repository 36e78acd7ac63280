//! `ldqa report` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa report` is not built yet")
}

//! `ldqa compare` (being written).

use std::process::ExitCode;

/// Arguments of `ldqa compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {}

pub fn run(_args: CompareArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ldqa compare` is not built yet")
}

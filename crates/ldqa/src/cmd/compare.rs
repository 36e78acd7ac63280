//! `ldqa compare A.json B.json`: two saved runs side by side, with gains of B over A.

use std::path::PathBuf;

use anyhow::{bail, Context};
use ldqa_report::{AnyResult, Comparison, RunResult};

use crate::exit::ExitStatus;

/// Output format of `ldqa compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Text,
    Markdown,
}

/// Arguments of `ldqa compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The reference run (A), saved with `ldqa run --save-result`.
    #[arg(value_name = "A.json")]
    pub a: PathBuf,
    /// The run compared with it (B).
    #[arg(value_name = "B.json")]
    pub b: PathBuf,
    /// text (aligned columns) or markdown (a table).
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,
}

fn load(path: &std::path::Path) -> anyhow::Result<RunResult> {
    match ldqa_report::read_any(path).with_context(|| format!("reading {}", path.display()))? {
        AnyResult::Run(r) => Ok(*r),
        AnyResult::Ab(_) => bail!(
            "{} is an A/B result: it already holds its comparison (`ldqa report {}`)",
            path.display(),
            path.display()
        ),
    }
}

fn label(path: &std::path::Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Entry point of `ldqa compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitStatus> {
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    // "A: run" and "B: run" stay apart when both files have one name (finding 35).
    let (la, lb) = (
        format!("A: {}", label(&args.a)),
        format!("B: {}", label(&args.b)),
    );
    let c = Comparison::between(&a, &b, &la, &lb);
    let legend = format!(
        "A = {}, B = {}; gain = A / B of each time: above 1, B is faster\n",
        args.a.display(),
        args.b.display()
    );
    crate::stdout::write(&match args.format {
        CompareFormat::Text => c.to_text() + &legend,
        CompareFormat::Markdown => ldqa_report::compare_markdown(&c) + "\n" + &legend,
    })?;
    Ok(ExitStatus::Success)
}

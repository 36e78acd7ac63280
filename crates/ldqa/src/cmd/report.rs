//! `ldqa report`: re-render a saved result (`ldqa run --save-result`, or `ab_result.json`)
//! as one self-contained HTML page (inline SVG plots, no network) or as markdown.

use std::path::PathBuf;

use anyhow::Context;
use ldqa_report::AnyResult;

use crate::exit::ExitStatus;

/// Output format of `ldqa report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Markdown,
}

/// Arguments of `ldqa report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A result file: `ldqa run --save-result` output or `ab_result.json`.
    #[arg(value_name = "RESULT.json")]
    pub result: PathBuf,
    /// Write here (default: RESULT.html or RESULT.md beside RESULT.json; `-` for stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// html (one self-contained page with plots) or markdown (tables).
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
}

/// Renders `result` in `format`.
pub fn render(result: &AnyResult, format: ReportFormat) -> String {
    match (result, format) {
        (AnyResult::Run(r), ReportFormat::Html) => {
            ldqa_report::run_html(r, &ldqa_report::run_title(r))
        }
        (AnyResult::Run(r), ReportFormat::Markdown) => {
            ldqa_report::run_markdown(r, &ldqa_report::run_title(r))
        }
        (AnyResult::Ab(ab), ReportFormat::Html) => ldqa_report::ab_html(ab),
        (AnyResult::Ab(ab), ReportFormat::Markdown) => ldqa_report::ab_markdown(ab),
    }
}

/// Entry point of `ldqa report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitStatus> {
    let result = ldqa_report::read_any(&args.result).map_err(|e| match e {
        // It names the file already.
        ldqa_report::ReportError::Io { .. } => anyhow::Error::new(e),
        other => anyhow::Error::new(other).context(format!("reading {}", args.result.display())),
    })?;
    let text = render(&result, args.format);
    let output = args.output.unwrap_or_else(|| {
        // `<stem>.html` beside the result: reports of two results in one folder do not
        // overwrite each other.
        let extension = match args.format {
            ReportFormat::Html => "html",
            ReportFormat::Markdown => "md",
        };
        args.result.with_extension(extension)
    });
    if output.as_os_str() == "-" {
        crate::stdout::write(&text)?;
    } else {
        ldqa_report::write_atomically(&output, text.as_bytes())
            .with_context(|| format!("writing {}", output.display()))?;
        eprintln!("wrote {}", output.display());
    }
    Ok(ExitStatus::Success)
}

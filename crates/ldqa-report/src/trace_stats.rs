//! `ldqa trace stats`' outputs: the table for a terminal, and the JSON document.

use ldqa_trace::TraceStats;
use serde::Serialize;

use crate::facts::thousands;

/// A trace's statistics, with the caches named.
#[derive(Debug, Clone, Serialize)]
pub struct TraceStatsReport {
    /// `ldqa-trace-stats`.
    pub schema: &'static str,
    /// 1.
    pub schema_version: u32,
    /// The trace file, as given.
    pub trace: String,
    /// What each LRU cache stands for, in the order of `stats.lru`.
    pub lru_labels: Vec<String>,
    /// Where the default capacities came from (a deployment), when they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The statistics.
    pub stats: TraceStats,
}

impl TraceStatsReport {
    /// The JSON document.
    pub fn to_json(&self) -> Result<String, crate::ReportError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// The table for a terminal.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let rate = s.requests as f64 / s.duration_s.max(1e-9);
        let mut out = format!(
            "Trace: {} ({}, blocks of {} tokens)\n",
            self.trace, s.format, s.block_tokens
        );
        out.push_str(&format!(
            "  requests        {} over {:.1} s ({rate:.2} per second)\n",
            thousands(s.requests as u64),
            s.duration_s
        ));
        out.push_str(&format!(
            "  prompt tokens   {} (mean {}, longest {}); output tokens {}\n",
            thousands(s.input_tokens),
            thousands(s.mean_input_tokens.round() as u64),
            thousands(s.max_input_tokens),
            thousands(s.output_tokens)
        ));
        out.push_str(&format!(
            "  distinct blocks {} tokens (what an unbounded cache ends up holding)\n",
            thousands(s.distinct_block_tokens)
        ));
        if let Some(d) = &self.deployment {
            out.push_str(&format!("Caches sized for: {d}\n"));
        }
        out.push_str(
            "\nPrefix-cache hits, requests served one after another (a server's running requests hold blocks too):\n",
        );
        let width = self
            .lru_labels
            .iter()
            .map(|l| l.chars().count())
            .chain([10])
            .max()
            .unwrap_or(10);
        out.push_str(&format!(
            "  {:<width$}  {:>12}  {:>14}  {:>8}  {:>12}\n",
            "cache", "tokens", "hit tokens", "hit rate", "requests hit"
        ));
        let rows = std::iter::once(("unbounded", &s.unbounded))
            .chain(self.lru_labels.iter().map(String::as_str).zip(&s.lru));
        for (label, hits) in rows {
            out.push_str(&format!(
                "  {label:<width$}  {:>12}  {:>14}  {:>7.1} %  {:>12}\n",
                hits.capacity_tokens.map_or("-".to_string(), thousands),
                thousands(hits.hit_tokens),
                hits.hit_rate * 100.0,
                thousands(hits.requests_with_hits as u64)
            ));
        }
        out
    }
}

//! `warmup_round.csv` / `query_round.csv`: upstream's columns first, then ours.
//!
//! Upstream (LMCache `long_doc_qa.py` at 3129b019) builds a pandas DataFrame of
//! `prompt_id, request_start, ttft, request_end, successful`, adds `ttft_time =
//! request_start + ttft` and `is_miss`, and writes it with `to_csv(index=False)`: floats as
//! Python `repr`, bools as `True`/`False`, times in seconds relative to the round start, and
//! `ttft = -1` for a request without a first token. The same is written here; additional
//! columns follow, empty where unknown. (Upstream's query file has `is_miss` before
//! `ttft_time`; pandas readers select by name, so one order is used for both rounds.)

use std::io::Write;
use std::path::Path;

use ldqa_metrics::is_upstream_success;
use ldqa_model::{ns_to_s, RequestRecord, RoundRecord};

use crate::pyfmt;
use crate::ReportError;

/// The header, in order. The first seven are upstream's.
pub const CSV_COLUMNS: [&str; 21] = [
    "prompt_id",
    "request_start",
    "ttft",
    "request_end",
    "successful",
    "ttft_time",
    "is_miss",
    "document_id",
    "queued",
    "first_byte",
    "ttft_queued",
    "latency",
    "tpot",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "failure_kind",
    "failure_message",
    "gpu_hit_tokens",
    "cpu_hit_tokens",
    "computed_tokens",
];

fn secs(ns: Option<u64>) -> String {
    ns.map(|v| pyfmt::repr(ns_to_s(v))).unwrap_or_default()
}

fn int(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn row(r: &RequestRecord) -> Vec<String> {
    let ok = is_upstream_success(r);
    let start_s = ns_to_s(r.sent_ns);
    let ttft_s = if ok {
        r.ttft_ns().map_or(-1.0, ns_to_s)
    } else {
        -1.0
    };
    let usage = r.usage.unwrap_or_default();
    let prefix = r.prefix;
    vec![
        r.prompt_id.to_string(),
        pyfmt::repr(start_s),
        pyfmt::repr(ttft_s),
        pyfmt::repr(ns_to_s(r.end_ns)),
        pyfmt::bool_str(ok).to_string(),
        pyfmt::repr(start_s + ttft_s),
        pyfmt::bool_str(r.is_miss).to_string(),
        r.document_id.to_string(),
        secs(Some(r.queued_ns)),
        secs(r.first_byte_ns),
        secs(r.ttft_queued_ns().filter(|_| ok)),
        secs(Some(r.latency_ns())),
        secs(r.tpot_ns()),
        int(usage.prompt_tokens),
        int(usage.completion_tokens),
        int(usage.cached_tokens),
        r.failure
            .as_ref()
            .map(|f| f.kind.as_str().to_string())
            .unwrap_or_default(),
        r.failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default(),
        int(prefix.map(|p| p.gpu_hit_tokens)),
        int(prefix.map(|p| p.cpu_hit_tokens)),
        int(prefix.map(|p| p.computed_tokens)),
    ]
}

/// Writes one round as CSV to `out` (header, then one row per request in `prompt_id` order).
pub fn write_round_csv<W: Write>(out: W, round: &RoundRecord) -> Result<(), ReportError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    let mut requests: Vec<&RequestRecord> = round.requests.iter().collect();
    requests.sort_by_key(|r| r.prompt_id);
    for r in requests {
        w.write_record(row(r))?;
    }
    w.flush()?;
    Ok(())
}

/// Writes one round as CSV to the file at `path`, replacing it whole or not at all.
pub fn write_round_csv_path(path: &Path, round: &RoundRecord) -> Result<(), ReportError> {
    let mut bytes = Vec::new();
    write_round_csv(&mut bytes, round)?;
    crate::write_atomically(path, &bytes).map_err(|e| ReportError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rich_round;
    use ldqa_model::RoundKind;

    fn csv_string(round: &RoundRecord) -> String {
        let mut buf = Vec::new();
        write_round_csv(&mut buf, round).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn upstream_columns_first() {
        let out = csv_string(&rich_round(RoundKind::Query));
        let header = out.lines().next().unwrap();
        assert!(header
            .starts_with("prompt_id,request_start,ttft,request_end,successful,ttft_time,is_miss,"));
        // Request 0: sent at 0, first token at 60 ms, ended at 261 ms, a hit.
        let first = out.lines().nth(1).unwrap();
        assert!(
            first.starts_with("0,0.0,0.06,0.261,True,0.06,False,0,"),
            "{first}"
        );
        // Request 5 timed out: ttft -1, ttft_time = request_start - 1.
        let timeout = out.lines().nth(6).unwrap();
        assert!(
            timeout.contains(",-1.0,") && timeout.contains(",False,"),
            "{timeout}"
        );
        assert!(
            timeout.contains(",timeout,no response within 30s,"),
            "{timeout}"
        );
    }

    #[test]
    fn snapshot_query_round() {
        insta::assert_snapshot!(csv_string(&rich_round(RoundKind::Query)));
    }

    #[test]
    fn quotes_messages_with_commas() {
        let out = csv_string(&rich_round(RoundKind::Query));
        assert!(out.contains(",\"HTTP 503: server busy, try later\","));
    }

    #[test]
    fn path_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("missing-dir").join("x.csv");
        let err = write_round_csv_path(&bad, &rich_round(RoundKind::Warmup)).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
        let good = dir.path().join("warmup_round.csv");
        write_round_csv_path(&good, &rich_round(RoundKind::Warmup)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&good).unwrap(),
            csv_string(&rich_round(RoundKind::Warmup))
        );
    }
}

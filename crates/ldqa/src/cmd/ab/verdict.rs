//! The verdict of an A/B run, in words.

use ldqa_report::compare::gain_str;
use ldqa_report::Comparison;

/// One paragraph: what LMCache bought, and why (or what went wrong). `problems` are one-line
/// summaries (a server's log is shown on stderr and kept in `ab_result.json`, not here).
pub fn verdict(c: Option<&Comparison>, exceeds: Option<bool>, problems: &[String]) -> String {
    if !problems.is_empty() {
        return format!(
            "Incomplete: {}. Finished results are kept in the output folder and shown above.",
            problems.join("; ")
        );
    }
    let Some(c) = c else {
        return "No comparison: an engine produced no result.".to_string();
    };
    let row = |m: &str| c.row(m);
    let (Some(q), Some(t)) = (row("query mean TTFT"), row("query round time")) else {
        return "No comparison: the query rounds are missing.".to_string();
    };
    let (Some(g), Some(a), Some(b)) = (q.gain, q.a, q.b) else {
        return "No comparison: a query round had no successful request.".to_string();
    };
    let lat = t.gain.map_or("an unmeasurable".to_string(), gain_str);
    let fits = match exceeds {
        Some(true) => " The documents' KV cache exceeds the GPU cache, so the baseline recomputes them in the query round while LMCache loads them from CPU RAM.",
        Some(false) => " The documents' KV cache fits in the GPU cache, so both engines can reuse it from GPU memory.",
        None => "",
    };
    let head = if g >= 1.5 {
        format!(
            "LMCache wins: its query round reaches the first token {} faster than the baseline's (mean TTFT {a:.3}s → {b:.3}s) and its round is {lat} shorter.",
            gain_str(g)
        )
    } else if g >= 1.1 {
        format!(
            "LMCache helps a little: query mean TTFT {} faster ({a:.3}s → {b:.3}s), round time {lat}.",
            gain_str(g)
        )
    } else {
        format!(
            "No gain from LMCache: query mean TTFT {} ({a:.3}s vs {b:.3}s), round time {lat}.",
            gain_str(g)
        )
    };
    let hint = match (g < 1.1, exceeds) {
        (true, Some(false)) => " Offloading cannot help a working set that fits: add documents (--num-documents) to see it.",
        (true, Some(true)) => " Check that the LMCache connector is active and LMCACHE_MAX_LOCAL_CPU_SIZE holds the documents.",
        _ => "",
    };
    format!("{head}{fits}{hint}")
}

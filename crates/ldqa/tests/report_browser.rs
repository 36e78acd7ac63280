//! The HTML reports, rendered in a real browser: `scripts/render-reports` writes the report
//! of a `run`, of a `predict --engine both` (one page per engine), of an `ab --sim` and of
//! two `sweep --sim` (one on two simulated instances), and renders each in headless Chromium to its DOM, its console messages and screenshots.
//! Here: every page has every section once rendered, and logged nothing to the console.

use std::path::Path;
use std::process::Command;

/// Runs the script once into a fresh folder, with this build's binary.
fn render(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(root.join("scripts/render-reports"))
        .arg(out)
        .env("LDQA_BIN", env!("CARGO_BIN_EXE_ldqa"))
        .status()
        .expect("scripts/render-reports runs");
    assert!(status.success(), "scripts/render-reports failed: {status}");
}

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_has(dom: &str, page: &str, parts: &[&str]) {
    for part in parts {
        assert!(dom.contains(part), "{page}: the rendered DOM lacks {part}");
    }
}

/// What every run page (run, predict) shows once rendered.
const RUN_SECTIONS: &[&str] = &[
    "<h2>Results</h2>",
    "<h3>Warmup round</h3>",
    "<h3>Query round</h3>",
    "TTFT from send (ms)",
    "TPOT (ms)",
    "ITL max (ms)",
    "<th>tokens</th>",
    "<th>cached tokens</th>",
    "<th>throughput</th>",
    "Gains (query over warmup)",
    "<h2>Plots</h2>",
    "<h3>TTFT per request</h3>",
    "<h3>TTFT distribution</h3>",
    "<h3>Request timelines</h3>",
    "<h2>Configuration</h2>",
    " GMT · model ",
];

#[test]
#[ignore = "needs headless Chromium (Debian's chromium); scripts/test installs it"]
fn reports_render_with_every_section_and_no_console_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    render(out);
    for page in [
        "run",
        "predict-vllm",
        "predict-lmcache",
        "ab",
        "sweep",
        "sweep-cluster",
    ] {
        let console = read(out, &format!("{page}.console.txt"));
        assert!(console.trim().is_empty(), "{page} logged:\n{console}");
        for png in [format!("{page}.png"), format!("{page}.top.png")] {
            let bytes = std::fs::read(out.join(&png)).unwrap();
            assert!(
                bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
                "{png}"
            );
        }
        let dom = read(out, &format!("{page}.dom.html"));
        assert!(dom.contains("<svg class=\"plot\""), "{page}: no plot");
        if page == "sweep" {
            assert_has(
                &dom,
                page,
                &[
                    "class=\"verdict\"",
                    "<h2>Verdict</h2>",
                    "<h2>Plots</h2>",
                    "<h2>Points</h2>",
                    "<h3>--lmcache-cpu-gib 30</h3>",
                    "<h3>--lmcache-cpu-gib 66</h3>",
                    "LMCache wins from 42 to 53 documents",
                    "<h2>Workload</h2>",
                ],
            );
            continue;
        }
        if page == "sweep-cluster" {
            assert_has(
                &dom,
                page,
                &[
                    "<h3>--router round-robin</h3>",
                    "<h3>--router cache-aware</h3>",
                    "Each of 2 instances: GPU prefix cache",
                    "<summary>Per instance</summary>",
                    "<td>lmcache</td><td>query</td><td>#2</td>",
                ],
            );
            continue;
        }
        if page == "ab" {
            assert_has(
                &dom,
                page,
                &[
                    "class=\"verdict\"",
                    "<h2>Comparison</h2>",
                    "<h2>TTFT distribution, both engines</h2>",
                    "<h2>baseline</h2>",
                    "<h2>lmcache</h2>",
                    "<h3>Warmup round</h3>",
                    "<h3>Request timelines</h3>",
                    "<h2>Configuration</h2>",
                ],
            );
        } else {
            assert_has(&dom, page, RUN_SECTIONS);
        }
        if page.starts_with("predict") {
            assert_has(
                &dom,
                page,
                &[
                    "<th>prompt tokens by source</th>",
                    "target <code>simulator</code>",
                ],
            );
        } else if page == "run" {
            assert_has(&dom, page, &["<th>server</th>", "GPU prefix cache hits"]);
        }
    }
}

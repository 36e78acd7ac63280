//! `ldqa run` end to end: the binary against the scripted server on 127.0.0.1:0.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ldqa_testserver::{chat_stream, default_reply, role_chunk, Reply, ScriptedServer, Step};

fn ldqa() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"));
    cmd.env_remove("OPENAI_API_KEY").env("NO_COLOR", "1");
    cmd
}

/// Runs the binary on a blocking thread so the server keeps serving.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn is_generation(req: &ldqa_testserver::RequestInfo) -> bool {
    req.path.ends_with("completions")
}

async fn healthy_server(generated: Arc<AtomicUsize>) -> ScriptedServer {
    ScriptedServer::start(move |req| {
        if is_generation(req) {
            generated.fetch_add(1, Ordering::SeqCst);
            Reply::Stream(chat_stream(Duration::from_millis(2), &["a", "b", "c"], 60))
        } else {
            default_reply(req)
        }
    })
    .await
    .unwrap()
}

fn small_workload(cmd: &mut Command, server: &ScriptedServer, dir: &Path, inflight: usize) {
    cmd.args([
        "run",
        "--base-url",
        &server.base_url(),
        "--num-documents",
        "3",
        "--document-length",
        "50",
    ])
    .args([
        "--repeat-count",
        "2",
        "--repeat-mode",
        "tile",
        "--hit-miss-ratio",
        "1:1",
        "--output-len",
        "3",
    ])
    .args([
        "--max-inflight-requests",
        &inflight.to_string(),
        "--no-metrics",
        "--output-dir",
    ])
    .arg(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_prints_upstreams_block_and_writes_every_file() {
    let generated = Arc::new(AtomicUsize::new(0));
    let server = healthy_server(Arc::clone(&generated)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 2);
    cmd.arg("--json-output")
        .arg("--visualize")
        .arg("--save-result")
        .arg(dir.path().join("result.json"));
    let out = run(cmd).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Upstream's lines, in upstream's order, greppable.
    let block: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" round "))
        .take(8)
        .collect();
    let prefixes = [
        "Warmup round mean TTFT: ",
        "Warmup round time: ",
        "Warmup round prompt count: 3",
        "Warmup round successful prompt count: 3",
        "Query round mean TTFT: ",
        "Query round time: ",
        "Query round prompt count: 6",
        "Query round successful prompt count: 6",
    ];
    for (line, prefix) in block.iter().zip(prefixes) {
        assert!(
            line.starts_with(prefix),
            "{line:?} does not start with {prefix:?}"
        );
    }
    assert!(stdout.contains("=== BENCHMARK RESULTS ==="));

    // --json-output: the last line, upstream's three keys.
    let last = stdout.lines().last().unwrap();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    for key in [
        "query_ttft_per_prompt",
        "query_round_time_per_prompt",
        "warmup_round_time_per_prompt",
    ] {
        assert!(json[key].as_f64().unwrap() > 0.0, "{key} in {last}");
    }

    // 5 pre-warmup + 3 warmup + 6 query requests, nothing retried.
    assert_eq!(generated.load(Ordering::SeqCst), 14);
    let csv = std::fs::read_to_string(dir.path().join("query_round.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("prompt_id,request_start,ttft,request_end,successful,ttft_time,is_miss"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 6);
    // Hit/miss 1:1: odd positions are misses.
    for (i, row) in rows.iter().enumerate() {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols[0], i.to_string());
        assert_eq!(cols[4], "True");
        assert_eq!(
            cols[6],
            if i % 2 == 1 { "True" } else { "False" },
            "row {row}"
        );
    }
    let warmup_csv = std::fs::read_to_string(dir.path().join("warmup_round.csv")).unwrap();
    assert_eq!(warmup_csv.lines().count(), 4);
    let log = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        14,
        "every request, pre-warmup included, is logged as it ends"
    );
    for plot in ["warmup_round.png", "query_round.png"] {
        let bytes = std::fs::read(dir.path().join(plot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{plot} is a PNG");
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<svg"), "report.html has plots");
    for external in ["src=\"http", "href=\"http", "<link", "@import"] {
        assert!(!html.contains(external), "report.html loads {external}…");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["schema_version"], 1);
    assert_eq!(result["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(
        result["config"]["model"], "scripted-model",
        "--model auto picks the first listed model"
    );
    assert_eq!(result["rounds"][1]["records"].as_array().unwrap().len(), 6);
}

/// Reliability review C8: responses that cannot be written (a full disk) are an error,
/// not an empty file and exit 0; the measurements are still written.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_is_an_error() {
    let server = healthy_server(Arc::new(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    cmd.args(["--output", "/dev/full"]);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writing --output /dev/full: No space left on device"),
        "{stderr}"
    );
    assert!(dir.path().join("query_round.csv").is_file());
}

/// `--output FILE`: upstream's response lines, numbered as upstream numbers them ("Sending
/// prompt" from 1 out of the round's prompts, "Response of request" from 0; finding 42).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_go_to_output_in_upstreams_words() {
    let server = healthy_server(Arc::new(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    let file = dir.path().join("responses.txt");
    cmd.arg("--output").arg(&file);
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("------warm up round------\n"), "{text}");
    assert!(text.contains("------query round------\n"), "{text}");
    assert!(
        text.contains("\n--- Sending prompt 1/3 ---\n\nResponse of request 0: abc\n"),
        "{text}"
    );
    assert!(text.contains("--- Sending prompt 6/6 ---"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gate_exits_1_with_upstreams_message() {
    let server = healthy_server(Arc::new(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 2);
    cmd.args(["--expected-ttft-gain", "1000"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR: TTFT gain"), "{stderr}");
    assert!(stderr.contains("< expected 1000.00×"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_failing_exits_2_showing_the_first_errors() {
    let server = ScriptedServer::start(|req| {
        if is_generation(req) {
            Reply::Json(
                500,
                serde_json::json!({"object": "error", "message": "engine dead"}),
            )
        } else {
            default_reply(req)
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 2);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("every request of the warmup round failed"),
        "{stderr}"
    );
    assert!(stderr.contains("engine dead"), "{stderr}");
    // The measurements were still written.
    assert!(dir.path().join("warmup_round.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_failures_are_counted_not_fatal() {
    let n = Arc::new(AtomicUsize::new(0));
    let server = ScriptedServer::start(move |req| {
        if !is_generation(req) {
            return default_reply(req);
        }
        if n.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
            Reply::Stream(vec![role_chunk(), Step::Cut])
        } else {
            Reply::Stream(chat_stream(Duration::ZERO, &["a"], 10))
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    let out = run(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Requests 3, 7, 11 (0-based over the whole run) were cut: 5 pre-warmup, then warmup
    // positions 0..3 (request 7 is warmup position 2), then query (11 is position 3).
    assert!(
        stdout.contains("Warmup round successful prompt count: 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Query round successful prompt count: 5"),
        "{stdout}"
    );
    assert!(stdout.contains("truncated_stream"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_naming_the_flag_and_send_nothing() {
    let generated = Arc::new(AtomicUsize::new(0));
    let server = healthy_server(Arc::clone(&generated)).await;
    let cases: [(&[&str], &str); 8] = [
        (&["--hit-miss-ratio", "0:0"], "--hit-miss-ratio"),
        (&["--hit-miss-ratio", "3:x"], "--hit-miss-ratio"),
        (&["--num-documents", "0"], "--num-documents"),
        (&["--document-length", "0"], "--document-length"),
        (&["--repeat-mode", "zigzag"], "--repeat-mode"),
        (&["--max-inflight-requests", "0"], "--max-inflight-requests"),
        (
            &["--sleep-time-after-warmup", "-1"],
            "--sleep-time-after-warmup",
        ),
        (&["--port", "8000"], "--port"),
    ];
    for (args, flag) in cases {
        let mut cmd = ldqa();
        cmd.args(["run", "--base-url", &server.base_url()])
            .args(args);
        let out = run(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    assert!(
        server.served().is_empty(),
        "nothing may be sent for bad flags"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_2_before_any_work() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    cmd.args([
        "run",
        "--port",
        &port.to_string(),
        "--host",
        "127.0.0.1",
        "--output-dir",
    ])
    .arg(dir.path().join("out"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/v1/models")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "no output before the server answered"
    );
}

/// A server that answers the 5 pre-warmup and the first 2 warmup requests, then stalls.
async fn server_stalling_after_seven() -> ScriptedServer {
    let n = Arc::new(AtomicUsize::new(0));
    ScriptedServer::start(move |req| {
        if !is_generation(req) {
            return default_reply(req);
        }
        if n.fetch_add(1, Ordering::SeqCst) < 7 {
            Reply::Stream(chat_stream(Duration::ZERO, &["a"], 10))
        } else {
            Reply::Stream(vec![role_chunk(), Step::Stall])
        }
    })
    .await
    .unwrap()
}

/// Starts `cmd` and waits until the stalled 8th request is in flight.
async fn spawn_until_stalled(mut cmd: Command, server: &ScriptedServer) -> std::process::Child {
    let mut child = cmd.spawn().unwrap();
    let generated = || {
        server
            .served()
            .iter()
            .filter(|s| is_generation(&s.request))
            .count()
    };
    while generated() < 8 {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "ldqa ended early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code, reason = "kill(2) sends SIGINT to our child")]
async fn ctrl_c_writes_what_was_measured_and_exits_130() {
    let server = server_stalling_after_seven().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn_until_stalled(cmd, &server).await;
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.path().join("warmup_round.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        3,
        "two finished and one cancelled request: {csv}"
    );
    assert!(rows[2].contains("cancelled"), "{csv}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_every_finished_request_readable() {
    let server = server_stalling_after_seven().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawn_until_stalled(cmd, &server).await;
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let log = ldqa_report::read_record_log(&dir.path().join("records.jsonl")).unwrap();
    // 5 pre-warmup and 2 warmup requests had finished.
    assert_eq!(log.entries.len(), 7);
    assert!(log.entries.iter().all(|e| e.record.is_success()));
}

/// Finding 38: a metrics endpoint that cannot be read gets advice that fits what was given:
/// "check --metrics-url" when the user named it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_url_that_fails_is_named_with_advice_that_fits() {
    let server = healthy_server(Arc::new(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 2);
    // small_workload passes --no-metrics; this command names a missing endpoint instead.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a != "--no-metrics")
        .collect();
    let bad = format!("{}/no-such-metrics", server.base_url());
    let mut cmd = ldqa();
    cmd.args(args).args(["--metrics-url", &bad]);
    let out = run(cmd).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let warning = text
        .lines()
        .find(|l| l.contains("server metrics not read"))
        .unwrap();
    assert!(warning.contains(&bad), "{warning}");
    assert!(warning.contains("check --metrics-url"), "{warning}");
}

/// `ldqa run` against `server` with a tiny workload and `extra` flags; its output.
async fn probe_run(base_url: &str, extra: &[&str]) -> Output {
    let mut cmd = ldqa();
    cmd.args(["run", "--base-url", base_url, "--num-documents", "1"])
        .args([
            "--document-length",
            "5",
            "--output-len",
            "1",
            "--no-metrics",
        ])
        .args(extra)
        .arg("--output-dir")
        .arg(tempfile::tempdir().unwrap().keep());
    run(cmd).await
}

/// Findings 19, 25 and 43: what `ldqa run` says when the server's model list disagrees,
/// when `/v1` is missing from the URL or the server is not an API, and how long it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_probe_fails_fast_and_says_why() {
    let server = healthy_server(Arc::new(AtomicUsize::new(0))).await;
    // A model the server does not list: every request would be a 404.
    let out = probe_run(&server.base_url(), &["--model", "does-not-exist"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--model does-not-exist is not served"),
        "{err}"
    );
    assert!(err.contains("scripted-model"), "{err}");
    // The base URL without /v1.
    let root = format!("http://{}", server.addr());
    let out = probe_run(&root, &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("did you mean --base-url {root}/v1?")),
        "{err}"
    );

    // A web server, not an API: its 404 page is not dumped into the error line.
    let web = ScriptedServer::start(|_| {
        let page = format!(
            "<!DOCTYPE html><html><body>{}</body></html>",
            "x".repeat(5000)
        );
        Reply::Text(404, page, "text/html")
    })
    .await
    .unwrap();
    let out = probe_run(&web.base_url(), &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("an HTML page") && !err.contains("xxxx"),
        "{err}"
    );
    // With a model named, a server without a model list is only a warning.
    let out = probe_run(&web.base_url(), &["--model", "m"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("could not check --model"), "{text}");

    // A model list that never comes: --request-timeout bounds the probe too (the default
    // limit is 10 s).
    let hanging = ScriptedServer::start(|_| Reply::Stream(vec![Step::Stall]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = probe_run(&hanging.base_url(), &["--request-timeout", "1"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}

/// Finding 15: with stderr not a terminal (CI logs, `nohup`), a line when each round starts
/// and ends, and a heartbeat while a request takes longer than 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_on_a_non_terminal() {
    let generated = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&generated);
    let server = ScriptedServer::start(move |req| {
        if !is_generation(req) {
            return default_reply(req);
        }
        // The first warmup request (after the 5 pre-warmup prompts) stalls for 11 s.
        let pause = if seen.fetch_add(1, Ordering::SeqCst) == 5 {
            Duration::from_secs(11)
        } else {
            Duration::ZERO
        };
        let mut steps = vec![Step::Sleep(pause)];
        steps.extend(chat_stream(Duration::ZERO, &["a"], 1));
        Reply::Stream(steps)
    })
    .await
    .unwrap();
    let out = probe_run(&server.base_url(), &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for line in [
        "Pre-warmup round started: 5 requests",
        "Warmup round started: 1 request",
        "Warmup round running: 0/1 done",
        "Warmup round finished: 1/1 done",
        "Query round finished: 2/2 done",
    ] {
        assert!(err.contains(line), "{line:?} missing from:\n{err}");
    }
}

/// Reliability review A19: a server that stops sending mid-stream no longer hangs the run:
/// after `--stall-timeout` seconds of silence the request fails as timed out, and the run
/// goes on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_fails_after_the_stall_timeout() {
    let server = server_stalling_after_seven().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    small_workload(&mut cmd, &server, dir.path(), 1);
    cmd.args(["--stall-timeout", "0.3"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .expect("the run ended")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "every query request stalled: {stderr}"
    );
    let log = ldqa_report::read_record_log(&dir.path().join("records.jsonl")).unwrap();
    let stalled: Vec<_> = log
        .entries
        .iter()
        .filter_map(|e| e.record.failure.as_ref())
        .collect();
    assert!(!stalled.is_empty(), "{stderr}");
    for f in stalled {
        assert_eq!(f.kind, ldqa_model::FailureKind::Timeout, "{f:?}");
        assert!(f.message.contains("--stall-timeout"), "{f:?}");
    }
}

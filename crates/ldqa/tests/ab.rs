//! `ldqa ab` end to end with scripted servers started as real child processes
//! (the `scripted_serve` test binary of this package, built with `--features
//! scripted-serve`; the tests that need it are ignored without), and `ldqa report` / `ldqa compare` on
//! what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `ldqa`, with the GPU probe off so that `ab` plans the same way on any machine.
fn ldqa() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"));
    cmd.env("LDQA_NO_GPU_PROBE", "1");
    cmd
}

/// The scripted server binary (`tests/bin/scripted_serve.rs`), which cargo builds
/// beside `ldqa` when the `scripted-serve` feature is on. Cargo names its path either way.
fn scripted_serve() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_scripted_serve"));
    assert!(
        bin.exists(),
        "{} was not built: run with --features scripted-serve (scripts/test does)",
        bin.display()
    );
    bin
}

fn ab(out: &Path, baseline: &str, lmcache: &str, extra: &[&str]) -> Output {
    let ss = scripted_serve();
    ldqa()
        .args(["ab", "--num-documents", "6", "--document-length", "50"])
        .args(["--output-len", "3", "--ready-timeout", "20", "--output-dir"])
        .arg(out)
        .arg("--baseline-cmd")
        .arg(format!("{} {baseline}", ss.display()))
        .arg("--lmcache-cmd")
        .arg(format!("{} {lmcache}", ss.display()))
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn ab_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("ab_result.json")).unwrap()).unwrap()
}

/// The `data-points` of every plot in an HTML report.
fn plot_points(html: &str) -> Vec<usize> {
    html.split("<svg class=\"plot\" data-points=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "scripted-serve"),
    ignore = "needs --features scripted-serve (scripts/test passes it)"
)]
fn both_engines_compared_with_a_gate_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let o = ab(
        &out,
        "--ttft-ms 60",
        "--ttft-ms 60 --hit-ttft-ms 5",
        &["--expected-ttft-gain", "2"],
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("=== BENCHMARK RESULTS ===").count(), 2);
    assert!(stdout.contains("=== baseline vs LMCache ==="), "{stdout}");
    assert!(stdout.contains("query mean TTFT"), "{stdout}");
    assert!(stdout.contains("verdict: LMCache wins"), "{stdout}");
    let v = ab_json(&out);
    assert!(v["gains"]["ttft_gain"].as_f64().unwrap() > 2.0, "{v}");
    for e in ["baseline", "lmcache"] {
        for f in [
            "warmup_round.csv",
            "query_round.csv",
            "result.json",
            "server.log",
        ] {
            assert!(out.join(e).join(f).exists(), "{e}/{f}");
        }
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let points = plot_points(&html);
    // 1 CDF of both engines; per engine 2 TTFT plots, 1 CDF, 2 timelines.
    assert_eq!(points.len(), 11, "{points:?}");
    assert!(points.iter().all(|&n| n > 0), "{points:?}");
    assert!(html.contains("class=\"sides\""));

    // The same gate, unreachable: exit 1.
    let out2 = dir.path().join("ab2");
    let o = ab(
        &out2,
        "--ttft-ms 40",
        "--ttft-ms 40",
        &["--expected-ttft-gain", "2"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("ERROR: TTFT gain"),
        "{}",
        text(&o.stderr)
    );

    // `ldqa report` re-renders both kinds of result; `ldqa compare` puts two runs side by side.
    let md = ldqa()
        .arg("report")
        .arg(out.join("ab_result.json"))
        .args(["--format", "markdown", "-o", "-"])
        .output()
        .unwrap();
    assert!(md.status.success());
    assert!(text(&md.stdout).contains("| query mean TTFT |"));
    let one = dir.path().join("one.html");
    let r = ldqa()
        .arg("report")
        .arg(out.join("baseline/result.json"))
        .arg("-o")
        .arg(&one)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r.stderr));
    let points = plot_points(&std::fs::read_to_string(&one).unwrap());
    assert_eq!(points.len(), 5);
    assert!(points.iter().all(|&n| n > 0));
    let c = ldqa()
        .arg("compare")
        .arg(out.join("baseline/result.json"))
        .arg(out.join("lmcache/result.json"))
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", text(&c.stderr));
    assert!(
        text(&c.stdout)
            .contains("| metric | A: result | B: result | gain (B: result over A: result) |"),
        "{}",
        text(&c.stdout)
    );
}

#[test]
#[cfg_attr(
    not(feature = "scripted-serve"),
    ignore = "needs --features scripted-serve (scripts/test passes it)"
)]
fn a_server_that_crashes_halfway_keeps_the_other_engine_and_resume_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let o = ab(&out, "--ttft-ms 20", "--ttft-ms 20 --exit-after 9", &[]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("lmcache server died during the run"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--exit-after"),
        "log tail is shown: {stderr}"
    );
    let v = ab_json(&out);
    assert_eq!(v["baseline"]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["lmcache"]["runs"].as_array().unwrap().len(), 0);
    assert!(
        v["verdict"].as_str().unwrap().starts_with("Incomplete"),
        "{v}"
    );
    assert!(stdout.contains("verdict: Incomplete"), "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("class=\"problem\""));
    let before = std::fs::read(out.join("baseline/result.json")).unwrap();

    // Resume with a healthy LMCache server: the baseline is not measured again.
    let o = ab(
        &out,
        "--ttft-ms 20",
        "--ttft-ms 20 --hit-ttft-ms 2",
        &["--resume"],
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("[baseline] reusing"), "{stderr}");
    assert!(!stderr.contains("[baseline] starting"), "{stderr}");
    assert_eq!(
        std::fs::read(out.join("baseline/result.json")).unwrap(),
        before
    );
    assert_eq!(
        ab_json(&out)["lmcache"]["runs"].as_array().unwrap().len(),
        1
    );
}

#[test]
#[cfg_attr(
    not(feature = "scripted-serve"),
    ignore = "needs --features scripted-serve (scripts/test passes it)"
)]
fn servers_that_never_get_ready_or_exit_at_once_are_errors_with_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let o = ldqa()
        .args([
            "ab",
            "--num-documents",
            "2",
            "--ready-timeout",
            "1",
            "--output-dir",
        ])
        .arg(&out)
        .args(["--baseline-cmd", "echo starting up; echo boom >&2; exit 7"])
        .args(["--lmcache-cmd"])
        .arg(format!(
            "{} --ready-after-ms 600000",
            scripted_serve().display()
        ))
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("baseline server: the server exited (exit status: 7)"),
        "{stderr}"
    );
    assert!(stderr.contains("| boom"), "{stderr}");
    assert!(
        stderr.contains("lmcache server: the server was not ready after 1s (/health answered 503)"),
        "{stderr}"
    );
    // The verdict names both problems in one line each; the logs are on stderr and in
    // the engines' `error`, not cut off after "last lines of its log:".
    let v = ab_json(&out);
    let verdict = v["verdict"].as_str().unwrap();
    assert_eq!(
        verdict,
        "Incomplete: baseline server: the server exited (exit status: 7); lmcache server: the \
         server was not ready after 1s (/health answered 503). Finished results are kept in the \
         output folder and shown above."
    );
    assert!(
        v["baseline"]["error"].as_str().unwrap().ends_with("| boom"),
        "{v}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "scripted-serve"),
    ignore = "needs --features scripted-serve (scripts/test passes it)"
)]
fn repeats_give_confidence_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let o = ab(
        &out,
        "--ttft-ms 30",
        "--ttft-ms 30 --hit-ttft-ms 5",
        &["--trials", "2"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("95% CI"), "{}", text(&o.stdout));
    assert!(out.join("lmcache/trial-2/result.json").exists());
    let v = ab_json(&out);
    let row = &v["comparison"]["rows"][2];
    assert_eq!(row["metric"], "query mean TTFT");
    assert_eq!(row["gain_ci95"]["n"], 2);
}

/// `ab --sim`: both engines are `ldqa serve` child processes, reached over real HTTP.
/// A small GPU (L4) keeps it quick: the recommender's 27 documents exceed its KV cache, so
/// the tutorial's effect must show.
#[test]
fn ab_sim_runs_the_tutorial_through_real_http() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args([
            "ab",
            "--sim",
            "--gpu",
            "l4",
            "--output-len",
            "20",
            "--time-scale",
            "20",
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("working set exceeds the GPU KV cache"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: LMCache wins"), "{stdout}");
    let ab = ab_json(dir.path());
    let query_ttft = |engine: &str| {
        let rounds = ab[engine]["runs"][0]["rounds"].as_array().unwrap();
        let query = rounds.iter().find(|r| r["kind"] == "query").unwrap();
        assert_eq!(query["summary"]["successful_count"], 27, "{engine}");
        query["summary"]["mean_ttft_s"].as_f64().unwrap()
    };
    assert!(query_ttft("lmcache") < query_ttft("baseline") / 2.0);
    // Finding 36: the report says the working set exceeds the GPU cache once.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(
        html.matches("exceeds the GPU cache").count(),
        1,
        "{html:.2000}"
    );
    // The capacity recorded is the one each simulated server announced it runs with.
    let planned = ab["config"]["gpu_kv_tokens"].as_u64().unwrap();
    for engine in ["baseline", "lmcache"] {
        let log = std::fs::read_to_string(dir.path().join(engine).join("server.log")).unwrap();
        assert!(
            log.contains("ldqa serve: listening on http://127.0.0.1:"),
            "{log}"
        );
        assert!(
            log.contains(&format!("GPU KV {planned} tokens")),
            "{planned}: {log}"
        );
        let recorded = &ab[engine]["runs"][0]["config"]["server_gpu_kv_tokens"];
        assert_eq!(recorded.as_u64(), Some(planned), "{engine}");
    }
}

/// `ab --sim` into `dir` with a tiny workload; `extra` flags last.
fn ab_sim(dir: &Path, num_documents: &str, extra: &[&str]) -> Output {
    ldqa()
        .args(["ab", "--sim", "--num-documents", num_documents])
        .args([
            "--document-length",
            "200",
            "--output-len",
            "4",
            "--time-scale",
            "50",
        ])
        .arg("--output-dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn resume_refuses_results_measured_with_another_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let first = ab_sim(dir.path(), "2", &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stored = std::fs::read(dir.path().join("baseline/result.json")).unwrap();

    let second = ab_sim(dir.path(), "3", &["--resume"]);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was measured with workload.num_documents = 2, but this run asks for 3"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("starting"),
        "no server was started: {stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("baseline/result.json")).unwrap(),
        stored
    );

    // The same configuration is reused, with gates and repeats free to change.
    let third = ab_sim(
        dir.path(),
        "2",
        &["--resume", "--expected-ttft-gain", "0.01"],
    );
    let stderr = text(&third.stderr);
    assert_eq!(third.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("[baseline] reusing"), "{stderr}");
    assert!(stderr.contains("[lmcache] reusing"), "{stderr}");
}

/// Usability finding 11: `ab` without `--sim` and without a GPU, as a new user first tries it.
#[test]
fn without_sim_or_gpu_ab_says_what_it_assumed_and_refuses_time_scale() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let o = ldqa()
        .args([
            "ab",
            "--time-scale",
            "4",
            "--num-documents",
            "2",
            "--output-dir",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --time-scale applies to the simulated servers only: add --sim"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing was started");

    // Without --time-scale it goes on: no `vllm` here (PATH has none), so both servers fail.
    let o = ldqa()
        .args(["ab", "--num-documents", "2", "--document-length", "100"])
        .args(["--ready-timeout", "5", "--output-dir"])
        .arg(&out)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "note: no GPU found and no --gpu: the recommender is skipped and LMCache gets \
             LMCACHE_MAX_LOCAL_CPU_SIZE=5"
        ),
        "{stderr}"
    );
    let v = ab_json(&out);
    let lmcache_cmd = v["lmcache"]["command"].as_str().unwrap();
    assert_eq!(
        lmcache_cmd.matches("PYTHONHASHSEED=0").count(),
        1,
        "{lmcache_cmd}"
    );
    let verdict = v["verdict"].as_str().unwrap();
    assert!(!verdict.contains("log:"), "{verdict}");
    assert!(
        verdict.starts_with("Incomplete: baseline server: the server exited (exit status: 127); "),
        "{verdict}"
    );
}

/// Issue 11: `ab` passes `ldqa run`'s workload flags through, so the tutorial's hit:miss
/// variant can be A/B'd.
#[test]
fn ab_passes_the_workload_flags_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = ab_sim(
        dir.path(),
        "3",
        &[
            "--repeat-count",
            "2",
            "--repeat-mode",
            "interleave",
            "--hit-miss-ratio",
            "1:1",
            "--shuffle-seed",
            "7",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ab = ab_json(dir.path());
    let w = &ab["config"]["workload"];
    assert_eq!(w["repeat_mode"], "interleave", "{w}");
    assert_eq!(w["shuffle_seed"], 7, "{w}");
    let rounds = ab["lmcache"]["runs"][0]["rounds"].as_array().unwrap();
    let query = rounds.iter().find(|r| r["kind"] == "query").unwrap();
    assert_eq!(query["summary"]["miss_count"], 3, "{}", query["summary"]);
    assert_eq!(query["summary"]["hit_count"], 3, "{}", query["summary"]);
}

/// Starts `ab --sim` on a workload long enough to be stopped in its baseline round, and
/// waits until the baseline server listens and has answered a few requests; returns the
/// child and the server's address.
#[cfg(target_os = "linux")]
#[allow(
    clippy::zombie_processes,
    reason = "the child is returned (or killed and waited for): its callers wait for it"
)]
fn ab_sim_in_its_baseline(dir: &Path) -> (std::process::Child, String) {
    let mut child = ldqa()
        .args([
            "ab",
            "--sim",
            "--num-documents",
            "40",
            "--document-length",
            "2000",
        ])
        .args(["--output-len", "50", "--time-scale", "1"])
        .arg("--output-dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.join("baseline").join("server.log");
    let records = dir.join("baseline").join("records.jsonl");
    let started = std::time::Instant::now();
    loop {
        let listening = std::fs::read_to_string(&log).unwrap_or_default();
        let answered = std::fs::read_to_string(&records).map_or(0, |t| t.lines().count());
        if let (Some(at), true) = (listening.find("http://"), answered >= 6) {
            let addr = listening[at + 7..]
                .split(|c: char| c.is_whitespace() || c == '/')
                .next();
            return (child, addr.unwrap().to_string());
        }
        if started.elapsed().as_secs() > 60 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the baseline never got going");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether something still accepts connections at `addr`, after up to 10 s of waiting.
#[cfg(target_os = "linux")]
fn still_listening(addr: &str) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed().as_secs() < 10 {
        if std::net::TcpStream::connect(addr).is_err() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// Reliability review D4: SIGTERM to `ab` is Ctrl-C: it stops the server it started and
/// writes what was measured, instead of dying at once and orphaning the server.
#[cfg(target_os = "linux")]
#[test]
#[allow(unsafe_code, reason = "kill(2) sends SIGTERM to our child")]
fn sigterm_stops_the_server_and_keeps_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = ab_sim_in_its_baseline(dir.path());
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending SIGTERM to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(
        !still_listening(&addr),
        "the baseline server at {addr} outlived ab"
    );
    let ab = ab_json(dir.path());
    assert!(
        ab["verdict"].as_str().unwrap().contains("nterrupted"),
        "{}",
        ab["verdict"]
    );
}

/// Reliability review D5: `kill -9` of `ab` runs no handler, yet its server goes too.
#[cfg(target_os = "linux")]
#[test]
fn the_server_dies_with_ab_even_by_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = ab_sim_in_its_baseline(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !still_listening(&addr),
        "the baseline server at {addr} outlived ab"
    );
}

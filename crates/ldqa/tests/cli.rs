//! Usability findings about the command line as a whole: negative numbers (18), a missing
//! result file (34), where `ldqa report` writes (23).

use assert_cmd::Command;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("LDQA_NO_GPU_PROBE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test");
    c
}

fn stderr(args: &[&str]) -> String {
    let out = ldqa().args(args).assert().code(2).get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small `ldqa predict` saving its result to `save`, its files in `out`.
fn predict_saved(save: &std::path::Path, out: &std::path::Path, extra: &[&str]) {
    ldqa()
        .args([
            "predict",
            "--num-documents",
            "2",
            "--document-length",
            "500",
        ])
        .arg("--save-result")
        .arg(save)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .assert()
        .success();
}

/// Finding 18: a negative number is a value with a clear error that names its flag, never
/// "unexpected argument".
#[test]
fn negative_numbers_are_values_that_name_their_flag() {
    for args in [
        &["run", "--num-documents", "-5"][..],
        &["predict", "--max-inflight-requests", "-3"][..],
        &["ab", "--num-documents", "-2"][..],
        &["serve", "--time-scale", "-1"][..],
        &["recommend", "--gpu", "h100-80gb", "--cpu-ram-gib", "-10"][..],
        &[
            "recommend",
            "--gpu",
            "h100-80gb",
            "--tensor-parallel-size",
            "-1",
        ][..],
    ] {
        let e = stderr(args);
        assert!(!e.contains("unexpected argument"), "{args:?}: {e}");
        assert!(e.contains(args[args.len() - 2]), "{args:?}: {e}");
    }
}

/// Finding 34: a missing result file is said once.
#[test]
fn a_missing_result_is_said_once() {
    let e = stderr(&["report", "/nonexistent/missing.json"]);
    assert_eq!(e.matches("missing.json").count(), 1, "{e}");
}

/// Finding 23: `ldqa report X.json` writes `X.html` beside it, so two results in one
/// folder get two reports.
#[test]
fn reports_are_named_after_their_result() {
    let dir = tempfile::tempdir().unwrap();
    for engine in ["vllm", "lmcache"] {
        let save = dir.path().join(format!("both-{engine}.json"));
        predict_saved(&save, &dir.path().join(engine), &["--engine", engine]);
        ldqa().arg("report").arg(&save).assert().success();
    }
    assert!(dir.path().join("both-vllm.html").is_file());
    let html = std::fs::read_to_string(dir.path().join("both-lmcache.html")).unwrap();
    // Finding 36: one title, whichever command wrote the page.
    assert!(
        html.contains("<h1>ldqa predict: Long Doc QA results</h1>"),
        "{html:.400}"
    );
}

/// Finding 35: `ldqa compare` labels its columns A and B even when both files share a name,
/// and says what a gain means.
#[test]
fn compare_labels_a_and_b_and_explains_the_gain() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["x", "y"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        predict_saved(
            &dir.path().join(sub).join("run.json"),
            &dir.path().join(sub),
            &[],
        );
    }
    let out = ldqa()
        .arg("compare")
        .arg(dir.path().join("x/run.json"))
        .arg(dir.path().join("y/run.json"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("A: run") && header.contains("B: run"),
        "{header}"
    );
    assert!(text.contains("above 1, B is faster"), "{text}");
}

/// Finding 27: every subcommand's `--help` has the same compact layout (one line a flag),
/// not clap's long spaced one for some.
#[test]
fn every_help_has_one_layout() {
    for command in [
        "run",
        "recommend",
        "predict",
        "serve",
        "ab",
        "report",
        "compare",
        "catalog",
    ] {
        let out = ldqa()
            .args([command, "--help"])
            .assert()
            .success()
            .get_output()
            .clone();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            !help.contains("see a summary with '-h'"),
            "{command} --help uses the long layout"
        );
    }
}

/// `ldqa calibrate` checks its flags before it sends anything, and says which one is wrong;
/// a server that is not there is an error that names it.
#[test]
fn calibrate_refuses_bad_flags_before_sending() {
    let base = [
        "calibrate",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--tokenizer",
        "x",
    ];
    for (extra, needle) in [
        (
            &["--max-num-batched-tokens", "0"][..],
            "--max-num-batched-tokens must be",
        ),
        (
            &[
                "--max-num-batched-tokens",
                "2048",
                "--prompt-lengths",
                "500",
            ][..],
            "--prompt-lengths needs at least two",
        ),
        (
            &["--max-num-batched-tokens", "2048", "--output-len", "2"][..],
            "--output-len must be at least 3",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let err = stderr(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let args = [&base[..], &["--max-num-batched-tokens", "2048"]].concat();
    let err = stderr(&args);
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

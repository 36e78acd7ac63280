//! `ldqa … | head -1`: a reader that leaves early is not an error. The command stops, says
//! nothing and exits 0 (it used to panic in `print!` and exit 101).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs `ldqa ARGS` with stdout read by a reader that takes `lines` lines and then closes
/// the pipe; returns the exit code and stderr. With 0 lines the pipe closes before ldqa
/// writes anything, so its first write to stdout must fail: that makes the test certain.
fn ldqa_into_closed_pipe(args: &[&str], lines: usize) -> (Option<i32>, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn recommend_into_a_closed_pipe_exits_0_silently() {
    // `recommend` still prints with `print!`: main's panic net is what keeps this quiet.
    let args = ["recommend", "--gpu", "h100-80gb", "--cpu-ram-gib", "1000"];
    for lines in [0, 1, 0, 1] {
        let (code, stderr) = ldqa_into_closed_pipe(&args, lines);
        assert_eq!(code, Some(0), "after {lines} line(s): {stderr}");
        assert_eq!(stderr, "", "after {lines} line(s)");
    }
}

#[test]
fn predict_into_a_closed_pipe_exits_0_and_says_only_what_it_simulates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "predict",
        "--engine",
        "both",
        "--num-documents",
        "2",
        "--document-length",
        "200",
        "--output-dir",
        out,
    ];
    for lines in [0, 1, 0] {
        let (code, stderr) = ldqa_into_closed_pipe(&args, lines);
        assert_eq!(code, Some(0), "after {lines} line(s): {stderr}");
        // `--engine both` prints a heading per engine with `println!`. Its one stderr line,
        // printed before the results, is all it says.
        assert!(stderr.starts_with("Simulating: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn report_to_a_closed_stdout_exits_0_silently() {
    // `report -o -` writes through the fallible stdout helper: the `StdoutClosed` error path.
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("r.json");
    let predicted = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args([
            "predict",
            "--num-documents",
            "2",
            "--document-length",
            "200",
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--save-result")
        .arg(&result)
        .output()
        .unwrap();
    assert!(predicted.status.success());
    let result = result.to_str().unwrap();
    for lines in [0, 1, 0] {
        let args = ["report", result, "--format", "markdown", "-o", "-"];
        let (code, stderr) = ldqa_into_closed_pipe(&args, lines);
        assert_eq!(code, Some(0), "after {lines} line(s): {stderr}");
        assert_eq!(stderr, "", "after {lines} line(s)");
    }
}

/// Reliability review C9: a stdout that cannot be written (a full disk) is an error with
/// its reason and exit 2, never a panic (exit 101); unlike a closed pipe, nothing was read.
#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args([
            "predict",
            "--num-documents",
            "2",
            "--document-length",
            "300",
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--json-output")
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writing to stdout: No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

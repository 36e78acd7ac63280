//! `ldqa serve` as a process: the listening line, `/health`, SIGTERM, and the real
//! `openai` Python package streaming from it (ignored by a plain `cargo test`;
//! `scripts/test` installs the package and runs it; without it, that test fails).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{start_serve, Server};

/// Starts `ldqa serve --port 0 ARGS…`; also returns its listening line.
fn start(args: &[&str]) -> (Server, String) {
    let server = start_serve(args);
    let line = server.line.clone();
    (server, line)
}

/// One HTTP/1.1 GET on 127.0.0.1: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    common::http("GET", &format!("127.0.0.1:{port}"), path)
}

/// Waits up to `limit` for the process to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
#[allow(unsafe_code, reason = "kill(2) sends SIGTERM to our child")]
fn prints_one_listening_line_answers_health_and_stops_on_sigterm() {
    let (mut server, line) = start(&["--time-scale", "50"]);
    assert!(line.contains("engine vllm"), "{line}");
    assert!(line.contains("time scale 50"), "{line}");
    let (status, _) = get(server.port, "/health");
    assert_eq!(status, 200);
    let (status, body) = get(server.port, "/v1/models");
    assert_eq!(status, 200);
    assert!(body.contains(&server.model), "{body}");
    let (status, body) = get(server.port, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("vllm:num_requests_running"), "{body}");

    let pid = libc::pid_t::try_from(server.child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut server.child, Duration::from_secs(30))
        .expect("ldqa serve still running 30 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "port still accepting after exit"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let (server, _) = start(&[]);
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["serve", "--port", &server.port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

fn python_has_openai() -> bool {
    Command::new("python3")
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs the openai Python package (scripts/test installs it)"]
fn the_openai_python_package_streams_from_ldqa_serve() {
    assert!(
        python_has_openai(),
        "`python3 -c 'import openai'` failed: scripts/test installs it \
         (python3 -m pip install 'openai>=1,<3')"
    );
    let (server, _) = start(&["--time-scale", "50", "--api-key", "test-key"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/openai_stream.py"
    );
    let base = format!("http://127.0.0.1:{}/v1", server.port);
    let out = Command::new("python3")
        .args([script, &base, &server.model, "test-key"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai_stream.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.starts_with("ok: openai "), "{stdout}");
    eprintln!("{stdout}");
}

#[test]
fn bad_fault_flags_are_refused_before_listening() {
    for (args, needle) in [
        (
            &["--fault-rate", "1.5"][..],
            "--fault-rate must be between 0 and 1",
        ),
        (
            &["--fault-rate", "0.1", "--faults", "drop,nope"][..],
            "unknown fault kind `nope`",
        ),
        (
            &["--fault-rate", "0.1", "--fault-stall-s=-1"][..],
            "--fault-stall-s must be",
        ),
    ] {
        let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
            .args(["serve", "--port", "0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

/// One server is one engine: `--engine` offers vllm and lmcache, not predict's `both`.
#[test]
fn serve_offers_one_engine_at_a_time() {
    let help = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[possible values: vllm, lmcache]"), "{help}");
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["serve", "--port", "0", "--engine", "both"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'both'"), "{stderr}");
}

/// Finding 14: a second run against the same server finds its warmup documents cached and
/// says the server was not cold; the first run does not.
#[test]
fn a_warm_server_is_called_out() {
    let server = start_serve(&["--time-scale", "50"]);
    let base = format!("http://127.0.0.1:{}/v1", server.port);
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
            .args(["run", "--base-url", &base, "--num-documents", "2"])
            .args([
                "--document-length",
                "2000",
                "--output-len",
                "2",
                "--output-dir",
            ])
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let warning = "the warmup round hit the server's cache";
    let first = run();
    assert!(!first.contains(warning), "{first}");
    let second = run();
    assert!(second.contains(warning), "{second}");
    assert!(second.contains("POST /reset_prefix_cache"), "{second}");
}

/// Findings 7 and 17: against `ldqa serve --time-scale 10`, `ldqa run` learns the scale from
/// `/v1/models`, says so, and reports one time base everywhere: the record log, the CSV and
/// the result all in the server's simulated time.
#[test]
fn run_reports_a_time_scaled_server_in_its_simulated_time() {
    let server = start_serve(&["--time-scale", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args([
            "run",
            "--port",
            &server.port.to_string(),
            "--num-documents",
            "2",
        ])
        .args([
            "--document-length",
            "2000",
            "--output-len",
            "5",
            "--repeat-mode",
            "tile",
        ])
        .arg("--save-result")
        .arg(dir.path().join("r.json"))
        .arg("--output-dir")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ldqa serve --time-scale 10"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\nnote: times are the server's simulated seconds"),
        "information, not a warning (finding 31): {stdout}"
    );

    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let query = result["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "query")
        .unwrap();
    let round_ns = query["duration_ns"].as_u64().unwrap();
    let log = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    let last_end = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["round"] == "query")
        .map(|v| v["record"]["end_ns"].as_u64().unwrap())
        .max()
        .unwrap();
    // The round ends just after its last request: in one time base the two are close; with
    // the log in wall time they would differ tenfold.
    assert!(
        last_end <= round_ns && last_end > round_ns / 2,
        "records.jsonl ends at {last_end} ns, the round at {round_ns} ns"
    );
}

/// Opens a chat stream of 100,000 tokens at real time and reads its first bytes: a
/// stream that would run for many minutes.
fn open_long_stream(server: &Server) -> TcpStream {
    let body = format!(
        r#"{{"model":"{}","messages":[{{"role":"user","content":"0 hi hi"}}],"max_tokens":100000,"stream":true}}"#,
        server.model
    );
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let n = s.read(&mut first).unwrap();
    assert!(n > 0, "the stream started");
    s
}

/// Reliability review B13: a long stream no longer keeps `serve` alive: after Ctrl-C it
/// drains for at most `--drain-timeout`, and a second Ctrl-C stops it at once.
#[cfg(unix)]
#[test]
#[allow(unsafe_code, reason = "kill(2) sends SIGINT to our child")]
fn ctrl_c_stops_serve_within_its_drain_timeout_even_mid_stream() {
    for (drain, second_signal) in [("1", false), ("600", true)] {
        let (mut server, _) = start(&["--time-scale", "1", "--drain-timeout", drain]);
        let _stream = open_long_stream(&server);
        let pid = libc::pid_t::try_from(server.child.id()).unwrap();
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        if second_signal {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: as above.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        }
        let status = wait_exit(&mut server.child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("--drain-timeout {drain}: still running 20 s after Ctrl-C"));
        assert_eq!(
            status.code(),
            Some(130),
            "--drain-timeout {drain}: {status:?}"
        );
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "--drain-timeout {drain}"
        );
    }
}

/// `(prompt tokens, cached tokens)` of one non-streamed chat request.
fn chat_usage(server: &Server, messages: serde_json::Value) -> (u64, u64) {
    let body = serde_json::json!({"model": server.model, "messages": messages, "max_tokens": 2});
    let (status, text) = common::http_with_body(
        "POST",
        &format!("127.0.0.1:{}", server.port),
        "/v1/chat/completions",
        &body.to_string(),
    );
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let usage = &v["usage"];
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
    )
}

/// The full 16-token blocks of the first `tokens` tokens.
fn whole_blocks(tokens: u64) -> u64 {
    tokens / 16 * 16
}

/// A shared system prompt and a conversation's earlier turns hit the prefix cache block by
/// block, as in vLLM, not only when the whole prompt repeats (peer-clients review). Token
/// counts follow the approximation: " word" is one token; the Llama-3.1 template puts 29
/// tokens before the first message, 5 before each further one and 5 after the last.
#[test]
fn shared_prefixes_hit_block_by_block() {
    let server = start_serve(&[]);
    let system = "You answer questions about caches.".to_string() + &" word".repeat(200);
    let system_tokens = 6 + 200; // "You", " answer", " questions", " about", " caches", "."
    let ask = |question: &str| {
        chat_usage(
            &server,
            serde_json::json!([
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ]),
        )
    };
    let (first, cached) = ask("What is a block?");
    assert_eq!(first, 29 + system_tokens + 5 + 5 + 5);
    assert_eq!(cached, 0);
    // Another question after the same system prompt: the shared prefix's full blocks hit.
    let (_, cached) = ask("And a chunk?");
    assert_eq!(cached, whole_blocks(29 + system_tokens + 5));

    // Turn two of a conversation starts with every token of turn one's prompt.
    let question = "Tell me".to_string() + &" more".repeat(100);
    let turn1 = serde_json::json!([{"role": "user", "content": question}]);
    let (turn1_tokens, _) = chat_usage(&server, turn1);
    let turn2 = serde_json::json!([
        {"role": "user", "content": question},
        {"role": "assistant", "content": "Caches keep things."},
        {"role": "user", "content": "Which things?"},
    ]);
    let (turn2_tokens, cached) = chat_usage(&server, turn2);
    assert_eq!(turn2_tokens, turn1_tokens + 4 + 5 + 3 + 5);
    assert_eq!(cached, whole_blocks(turn1_tokens));
}

/// Without a tokenizer, `/tokenize` counts as generation does (the approximation) and
/// `/detokenize` says it needs one.
#[test]
fn tokenize_counts_as_generation_does() {
    let server = start_serve(&[]);
    let host = format!("127.0.0.1:{}", server.port);
    let messages = serde_json::json!([{"role": "user", "content": "0 hi hi hi"}]);
    let (prompt_tokens, _) = chat_usage(&server, messages.clone());
    let body = serde_json::json!({"model": server.model, "messages": messages});
    let (status, text) = common::http_with_body("POST", &host, "/tokenize", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["count"], prompt_tokens);
    assert_eq!(v["tokens"].as_array().unwrap().len() as u64, prompt_tokens);
    let (status, text) = common::http_with_body(
        "POST",
        &host,
        "/detokenize",
        &serde_json::json!({"tokens": [1, 2]}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(text.contains("--tokenizer"), "{text}");
}

/// A client that trickles header lines is cut off at the header deadline (reliability
/// review B10: the connection stayed open for as long as it kept trickling).
#[test]
fn a_trickling_client_is_closed_at_the_header_deadline() {
    let server = start_serve(&["--header-timeout", "1"]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    while started.elapsed() < Duration::from_secs(10) {
        // One more header line every 200 ms: never the blank line that ends the head.
        if write!(s, "X-Trickle: {}\r\n", started.elapsed().as_millis()).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // End of stream, a reset, or whatever the server says as it gives up.
            _ => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let after = closed_after.expect("still open after 10 s of trickled headers");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
    // A well-behaved client is still served.
    let (status, _) = get(server.port, "/health");
    assert_eq!(status, 200);
}

/// The blocks a request's output filled are named too, as vLLM names them: a
/// conversation's next turn, which repeats the answer, hits through the answer, not only
/// through the previous prompt. (The approximate template does not trim the answer; a
/// model folder's own template does whatever it does, e.g. Llama-3's `| trim`.)
#[test]
fn a_conversations_next_turn_hits_the_answer_too() {
    let server = start_serve(&[]);
    let host = format!("127.0.0.1:{}", server.port);
    let question = "Tell me".to_string() + &" more".repeat(50);
    let body = serde_json::json!({
        "model": server.model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 40,
    });
    let (status, text) =
        common::http_with_body("POST", &host, "/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let turn1_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let answer = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let turn2 = serde_json::json!([
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Which things?"},
    ]);
    let (_, cached) = chat_usage(&server, turn2);
    // The answer's 40 tokens follow turn one's prompt in both; the last one was sampled
    // but never run through the model, so its block ends one token earlier.
    assert_eq!(cached, whole_blocks(turn1_tokens + 39));
    assert!(cached > whole_blocks(turn1_tokens), "{cached}");
}

/// `--instances 2`: two listening lines, two engines (a request to one is counted by its
/// own `/metrics` only), one SIGTERM stops both; `--instances 0` is refused.
#[test]
#[allow(unsafe_code, reason = "kill(2) sends SIGTERM to our child")]
fn several_instances_have_their_own_engines_and_stop_together() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args([
            "serve",
            "--port",
            "0",
            "--instances",
            "2",
            "--time-scale",
            "50",
        ])
        .env_remove("LDQA_SERVE_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut ports = Vec::new();
    for k in 1..=2 {
        let line = lines.next().unwrap().unwrap();
        assert!(line.contains(&format!("instance {k} of 2")), "{line}");
        let port: u16 = line
            .strip_prefix("ldqa serve: listening on http://127.0.0.1:")
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
    let finished = |port: u16| common::counter(port, "vllm:request_success_total");
    let (_, models) = get(ports[0], "/v1/models");
    let model: serde_json::Value = serde_json::from_str(&models).unwrap();
    let body = serde_json::json!({
        "model": model["data"][0]["id"],
        "prompt": "hi hi hi",
        "max_tokens": 2,
    })
    .to_string();
    let (status, answer) = common::http_with_body(
        "POST",
        &format!("127.0.0.1:{}", ports[0]),
        "/v1/completions",
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!((finished(ports[0]), finished(ports[1])), (1.0, 0.0));

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut child, Duration::from_secs(30))
        .expect("ldqa serve still running 30 s after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{port} still open"
        );
    }

    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["serve", "--port", "0", "--instances", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--instances must be 1 to 64"));
}

/// `ldqa run` with two `--base-url`s: request i of each round goes to server i mod 2, so in
/// tile order every document's query lands where its warmup did and hits; the section per
/// server splits the rounds, and each server's own counters add up to what the client saw.
#[test]
fn run_spreads_rounds_over_several_servers() {
    let servers = [
        common::start_serve(&["--time-scale", "20"]),
        common::start_serve(&["--time-scale", "20"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let base = |s: &common::Server| format!("http://127.0.0.1:{}/v1", s.port);
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["run", "--base-url", &base(&servers[0])])
        .args(["--base-url", &base(&servers[1])])
        .args(["--num-documents", "4", "--document-length", "1000"])
        .args([
            "--output-len",
            "4",
            "--repeat-count",
            "1",
            "--repeat-mode",
            "tile",
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let log = common::output_log(&out);
    assert!(out.status.success(), "{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Per server (client-side round robin over 2 servers"),
        "{log}"
    );
    assert_eq!(
        stdout.matches("they add up to what the client saw").count(),
        2,
        "{log}"
    );
    let records = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    let mut sent = [0.0; 2];
    for line in records.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let r = &v["record"];
        let server = r["prompt_id"].as_u64().unwrap() as usize % 2;
        sent[server] += 1.0;
        if v["round"] == "query" {
            let u = &r["usage"];
            let (prompt, cached) = (u["prompt_tokens"].as_u64(), u["cached_tokens"].as_u64());
            // All but the prompt's last, partial block (16 tokens a block).
            assert_eq!(cached, prompt.map(|p| (p - 1) / 16 * 16), "{line}");
        }
    }
    for (k, s) in servers.iter().enumerate() {
        assert_eq!(
            common::counter(s.port, "vllm:request_success_total"),
            sent[k],
            "server {k}"
        );
    }
}

//! `ldqa multi-round-qa`: conversations whose history grows every round, in virtual time
//! (`--predict`) and against `ldqa serve`; upstream's CSV; bad flags refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test")
        .env("NO_COLOR", "1");
    c
}

/// The workload of these tests: 3 users, 3 rounds, a question every second per user
/// (G = 1 s), answers of 50 tokens (well under a second on the simulated H100).
const WORKLOAD: &[&str] = &[
    "multi-round-qa",
    "--num-users",
    "3",
    "--num-rounds",
    "3",
    "--qps",
    "3",
    "--shared-system-prompt",
    "300",
    "--user-history-prompt",
    "200",
    "--answer-len",
    "50",
    "--time",
    "3.05",
];

/// (user, question number) → (prompt tokens, cached tokens), from multi_round_qa.json.
type Cached = BTreeMap<(u64, u64), (u64, u64)>;

/// A user's turns: (question number, (prompt tokens, cached tokens)).
type Turns = Vec<(u64, (u64, u64))>;

/// Every later turn of a user hits its whole previous turn (its prompt and its 50-token
/// answer, in whole 16-token blocks).
fn every_later_turn_hits_the_previous(all: &Cached) {
    let mut by_user: BTreeMap<u64, Turns> = BTreeMap::new();
    for (&(user, q), &v) in all {
        by_user.entry(user).or_default().push((q, v));
    }
    for turns in by_user.values() {
        for pair in turns.windows(2) {
            let ((_, (prev_prompt, _)), (_, (_, hit))) = (pair[0], pair[1]);
            assert_eq!(hit, (prev_prompt + 50 - 1) / 16 * 16, "{turns:?}");
        }
    }
}

fn cached_by_question(dir: &Path, engine: usize) -> Cached {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("multi_round_qa.json")).unwrap()).unwrap();
    assert_eq!(doc["schema"], "ldqa-multi-round-qa");
    doc["engines"][engine]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r.get("failure").is_none(), "{r}");
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                (n("user_id"), n("question_no")),
                (n("prompt_tokens"), n("cached_tokens")),
            )
        })
        .collect()
}

fn predict(dir: &Path, extra: &[&str]) -> Cached {
    let out = ldqa()
        .args(WORKLOAD)
        .args(["--predict", "--output-dir"])
        .arg(dir)
        .arg("--output")
        .arg(dir.join("summary.csv"))
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    cached_by_question(dir, 0)
}

/// A user's next question starts with its whole previous turn (prompt and answer), so the
/// prefix cache hits every full block of it: the previous prompt plus the answer's tokens
/// but the last (vLLM caches the KV it computed, and the last sampled token has none),
/// in 16-token blocks. Another user's first question hits the shared system prompt.
#[test]
fn each_turn_hits_the_previous_turn_block_by_block() {
    let dir = tempfile::tempdir().unwrap();
    let cached = predict(dir.path(), &[]);
    let mut by_user: BTreeMap<u64, Turns> = BTreeMap::new();
    for (&(user, q), &v) in &cached {
        by_user.entry(user).or_default().push((q, v));
    }
    let mut later_turns = 0;
    for turns in by_user.values() {
        for pair in turns.windows(2) {
            let ((_, (prev_prompt, _)), (_, (_, hit))) = (pair[0], pair[1]);
            assert_eq!(hit, (prev_prompt + 50 - 1) / 16 * 16, "{turns:?}");
            later_turns += 1;
        }
    }
    assert!(later_turns >= 3, "{cached:?}");
    let first_turn_hits: Vec<u64> = by_user.values().map(|t| t[0].1 .1).collect();
    assert!(
        first_turn_hits.iter().filter(|&&h| h >= 300).count() >= 2,
        "{first_turn_hits:?}"
    );
    let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert!(csv.starts_with(
        "prompt_tokens,generation_tokens,ttft,generation_time,user_id,question_id,launch_time,finish_time\n"
    ));
    assert_eq!(csv.lines().count(), cached.len() + 1);
}

/// `--engine both`: LMCache's arm runs the same conversations.
#[test]
fn both_engines_run_the_same_questions() {
    let dir = tempfile::tempdir().unwrap();
    predict(dir.path(), &["--engine", "both"]);
    let vllm = cached_by_question(dir.path(), 0);
    let lmcache = cached_by_question(dir.path(), 1);
    assert_eq!(
        vllm.keys().collect::<Vec<_>>(),
        lmcache.keys().collect::<Vec<_>>()
    );
}

/// Against `ldqa serve`, every question's prompt and cached tokens are what `--predict`
/// predicts: the client sends the history with the server's own answers, the server
/// tokenizes it as the prediction does. (How close the TTFTs come is a benchmark's
/// business: docs/benchmarks.md.)
#[test]
fn a_served_run_caches_what_predict_predicts() {
    let server = common::start_serve(&[]);
    let url = format!("http://127.0.0.1:{}/v1", server.port);
    let live = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(WORKLOAD)
        .args(["--base-url", &url, "--log-interval", "1", "--output-dir"])
        .arg(live.path())
        .arg("--output")
        .arg(live.path().join("summary.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Performance summary"), "{stdout}");
    assert!(stdout.contains("Config QPS: 3.0000 reqs/s"), "{stdout}");
    let served = cached_by_question(live.path(), 0);
    let predicted = predict(tempfile::tempdir().unwrap().path(), &[]);
    assert_eq!(served, predicted);
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    ldqa()
        .args(WORKLOAD)
        .args(["--qps", "0", "--predict"])
        .assert()
        .code(2)
        .stderr(contains("--qps"));
    let mut no_time: Vec<&str> = WORKLOAD.to_vec();
    no_time.truncate(WORKLOAD.len() - 2);
    ldqa()
        .args(&no_time)
        .arg("--predict")
        .assert()
        .code(2)
        .stderr(contains("--time"));
    ldqa()
        .args(WORKLOAD)
        .args(["--base-url", "http://127.0.0.1:9/v1", "--engine", "both"])
        .assert()
        .code(2)
        .stderr(contains("--predict"));
    ldqa()
        .args(&WORKLOAD[..WORKLOAD.len() - 2])
        .assert()
        .code(2)
        .stderr(contains("--base-url"));
}

/// `--sharegpt FILE`: the questions are the conversation's human turns, each answer as
/// long as the recorded one (here turn `i` has `10 + i` tokens, so question `n`'s answer,
/// turn `2n − 1`, has `9 + 2n`); a missing file is named.
#[test]
fn sharegpt_conversations_set_the_questions_and_answer_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let turns: Vec<String> = (0..8)
        .map(|i| {
            format!(
                "{{\"from\": \"x\", \"value\": \"turn {i}\", \"num_tokens\": {}}}",
                10 + i
            )
        })
        .collect();
    let data = format!(
        "[{{\"num_round\": 8, \"conversations\": [{}]}}]",
        turns.join(",")
    );
    let path = dir.path().join("ShareGPT.json");
    std::fs::write(&path, data).unwrap();
    let out = ldqa()
        .args(WORKLOAD)
        .args(["--predict", "--sharegpt"])
        .arg(&path)
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--output")
        .arg(dir.path().join("summary.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("multi_round_qa.json")).unwrap())
            .unwrap();
    let requests = doc["engines"][0]["requests"].as_array().unwrap();
    assert!(!requests.is_empty());
    for r in requests {
        let n = r["question_no"].as_u64().unwrap();
        assert_eq!(r["completion_tokens"].as_u64().unwrap(), 9 + 2 * n, "{r}");
    }
    ldqa()
        .args(WORKLOAD)
        .args(["--predict", "--sharegpt"])
        .arg(dir.path().join("absent.json"))
        .assert()
        .code(2)
        .stderr(contains("--sharegpt"));
}

/// `--base-url` twice: each user talks to one instance (user `u` to the `u mod 2`-th), so
/// its history stays cached where its next question goes; each instance's own counters
/// show exactly its users' questions (read by the test, and by `--metrics-url`, whose
/// lines say they add up), and the JSON has a line per instance.
#[test]
fn several_instances_keep_each_user_on_one() {
    let servers = [common::start_serve(&[]), common::start_serve(&[])];
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ldqa();
    cmd.args(WORKLOAD).arg("--no-warmup");
    for s in &servers {
        cmd.args(["--base-url", &format!("http://127.0.0.1:{}/v1", s.port)]);
        cmd.args([
            "--metrics-url",
            &format!("http://127.0.0.1:{}/metrics", s.port),
        ]);
    }
    let out = cmd
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--output")
        .arg(dir.path().join("summary.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("they add up to what the client saw"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("multi_round_qa.json")).unwrap())
            .unwrap();
    let all = cached_by_question(dir.path(), 0);
    assert!(all.len() >= 6, "{all:?}");
    for k in 0..2u64 {
        let counted = &doc["instance_counters"][k as usize]["requests"];
        let mine = cached_by_question(dir.path(), 1 + k as usize);
        let expected: Cached = all
            .iter()
            .filter(|((user, _), _)| user % 2 == k)
            .map(|(q, v)| (*q, *v))
            .collect();
        assert_eq!(mine, expected, "instance {}", k + 1);
        let finished = common::counter(servers[k as usize].port, "vllm:request_success_total");
        assert_eq!(finished as usize, expected.len(), "instance {}", k + 1);
        assert_eq!(
            counted.as_u64(),
            Some(finished as u64),
            "instance {}",
            k + 1
        );
    }
    // Every later turn hits its whole previous turn, on the user's own instance.
    every_later_turn_hits_the_previous(&all);
}

/// `--predict --instances 2 --router session`: each user is a session, so all its
/// questions go to one instance (a line per instance in the table and the JSON) and every
/// later turn hits its whole previous turn there; round robin splits a user's turns
/// between the instances and loses some of those hits.
#[test]
fn a_simulated_cluster_keeps_each_session_on_one_instance() {
    let run = |router: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = ldqa()
            .args(WORKLOAD)
            .args(["--predict", "--instances", "2", "--router", router])
            .arg("--output-dir")
            .arg(dir.path())
            .arg("--output")
            .arg(dir.path().join("summary.csv"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::output_log(&out));
        let each = [1, 2].map(|k| cached_by_question(dir.path(), k));
        (cached_by_question(dir.path(), 0), each)
    };
    let (all, each) = run("session");
    let users = |c: &Cached| {
        c.keys()
            .map(|(u, _)| *u)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(users(&each[0]).is_disjoint(&users(&each[1])), "{each:?}");
    assert_eq!(each[0].len() + each[1].len(), all.len());
    every_later_turn_hits_the_previous(&all);
    let cached = |c: &Cached| c.values().map(|(_, hit)| hit).sum::<u64>();
    let (rr, _) = run("round-robin");
    assert!(
        cached(&rr) < cached(&all),
        "{} against {}",
        cached(&rr),
        cached(&all)
    );
}

//! `ldqa run` (and `sweep`) with several `--base-url`s: each round's requests split by the
//! server that answered them (request `i` went to server `i mod N`, the client-side round
//! robin), and each server's own counters over the round beside what the client saw; or,
//! through one router, each instance's counters alone.

use ldqa_model::{RoundKind, RoundRecord};

use super::engine_replay::{shares, EngineReplay};
use super::instance_counters::{self, InstanceCounters};
use super::predict_trace::engine_table;

/// The section printed under the results: per round, a line for all servers and one per
/// server, then each server's counters when they were read.
pub(crate) fn section(rounds: &[RoundRecord], metrics_urls: &[String], servers: usize) -> String {
    let heading = format!(
        "\nPer server (client-side round robin over {servers} servers: request i to server i mod {servers})\n"
    );
    let mut out = heading;
    for round in rounds.iter().filter(|r| r.kind != RoundKind::PreWarmup) {
        let by_turn: Vec<usize> = round
            .requests
            .iter()
            .map(|r| client_side_turn(r, servers))
            .collect();
        out.push_str(&split(
            "",
            std::slice::from_ref(round),
            &[by_turn],
            servers,
            "server ",
        ));
        out.push_str(&client_and_counters(round, metrics_urls));
    }
    out
}

/// The server of `servers` that the client-side round robin sent `record` to: request i of
/// a round to server i mod N (`ldqa_loadgen`'s runner deals them so).
pub(crate) fn client_side_turn(record: &ldqa_model::RequestRecord, servers: usize) -> usize {
    record.prompt_id % servers.max(1)
}

/// `ldqa run` through a router with `--metrics-url` once per instance behind it: which
/// instance answered a request only the instances know, so per round, each instance's own
/// counters, and whether they add up to what the client saw.
pub(crate) fn behind_a_router(rounds: &[RoundRecord], metrics_urls: &[String]) -> String {
    let n = metrics_urls.len();
    let mut out = format!("\nPer instance (behind the router: each one's own counters over the round, {n} --metrics-url)\n");
    for round in rounds.iter().filter(|r| r.kind != RoundKind::PreWarmup) {
        out.push_str(&format!("{} round\n", round.kind.as_str()));
        out.push_str(&client_and_counters(round, metrics_urls));
    }
    out
}

/// Each server's counters over `round` beside the client's count of requests answered
/// and tokens cached (nothing when the metrics were not read).
fn client_and_counters(round: &RoundRecord, metrics_urls: &[String]) -> String {
    let counters = round_counters(round, metrics_urls);
    let answered = round.requests.iter().filter(|r| r.failure.is_none());
    let cached = answered
        .clone()
        .filter_map(|r| r.usage?.cached_tokens)
        .sum();
    instance_counters::lines(&counters, answered.count(), cached)
}

/// `rounds` split by the instance that served each request (`instances[r][i]`, request
/// `i` of round `r`), under `heading`: per reported round, a line for all and one per
/// instance (`{name}k`), with the load imbalance and any requests shed.
pub(crate) fn split(
    heading: &str,
    rounds: &[RoundRecord],
    instances: &[Vec<usize>],
    n: usize,
    name: &str,
) -> String {
    let mut out = heading.to_string();
    for (round, of) in rounds.iter().zip(instances) {
        if round.kind == RoundKind::PreWarmup {
            continue;
        }
        let each = shares(
            &round.requests,
            n,
            |i, _| of.get(i).copied().unwrap_or(0),
            |k| format!("{name}{}", k + 1),
        );
        let all = EngineReplay::of("all", &round.requests, round.duration_ns).with_instances(each);
        let rows: Vec<&EngineReplay> = std::iter::once(&all).chain(&all.instances).collect();
        out.push_str(&engine_table(
            &format!("{} round\n", round.kind.as_str()),
            &rows,
        ));
        out.push_str(&all.notes());
    }
    out
}

/// Each server's counters over `round`, from the evidence read around it (none when the
/// metrics were not read).
fn round_counters(round: &RoundRecord, metrics_urls: &[String]) -> Vec<InstanceCounters> {
    let Some(evidence) = &round.evidence else {
        return Vec::new();
    };
    metrics_urls
        .iter()
        .zip(&evidence.instances)
        .map(|(url, e)| InstanceCounters::from_evidence(url.clone(), Some(e)))
        .collect()
}

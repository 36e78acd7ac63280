//! Tests of the versioned result, including a check against `docs/result-schema.json`.

use super::*;
use crate::testutil::rich_round;
use serde_json::{json, Value};

fn sample() -> RunResult {
    let rounds = [rich_round(RoundKind::Warmup), rich_round(RoundKind::Query)];
    let env = Environment {
        os: "linux".into(),
        arch: "x86_64".into(),
        cpus: 2,
        hostname: Some("box".into()),
        target_url: Some("http://localhost:8000/v1".into()),
        model: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
    };
    RunResult::new(
        ToolInfo::new("ldqa", "0.1.0"),
        json!({"num_documents": 4}),
        env,
        &rounds,
    )
}

/// A checker for the subset of JSON Schema that `docs/result-schema.json` uses:
/// `type` (string or array), `required`, `properties`, `additionalProperties: false`,
/// `items`, `enum` and local `$ref` (`#/$defs/name`). Returns every violation found.
fn check(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .expect("only local $defs refs are used");
        let target = &root["$defs"][name];
        assert!(target.is_object(), "dangling $ref {r}");
        return check(root, target, value, at, errors);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type at {at}"),
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "number" => value.is_number(),
            "integer" => value.is_u64() || value.is_i64(),
            other => panic!("unknown type {other} at {at}"),
        });
        if !ok {
            errors.push(format!("{at}: expected {types:?}, got {value}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap();
            if !obj.contains_key(key) {
                errors.push(format!("{at}: missing required key {key}"));
            }
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
            for key in obj.keys() {
                if !props.is_some_and(|p| p.contains_key(key)) {
                    errors.push(format!("{at}: key {key} is not in the schema"));
                }
            }
        }
        for (key, sub) in props.into_iter().flatten() {
            if let Some(v) = obj.get(key) {
                check(root, sub, v, &format!("{at}.{key}"), errors);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(root, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/result-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn violations(value: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    check(&schema, &schema, value, "$", &mut errors);
    errors
}

#[test]
fn produced_result_matches_the_schema() {
    let value = serde_json::to_value(sample()).unwrap();
    assert_eq!(violations(&value), Vec::<String>::new());
    // Both nullable branches: a run without gains and without evidence.
    let mut bare = sample();
    bare.gains = None;
    bare.rounds.truncate(1);
    bare.rounds[0].evidence = None;
    bare.rounds[0].summary.server = None;
    assert_eq!(
        violations(&serde_json::to_value(bare).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn the_checker_catches_mismatches() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["rounds"][0]["summary"]["surprise_s"] = json!(1.0);
    value["rounds"][1]["records"][0]["sent_ns"] = json!("soon");
    value["environment"].as_object_mut().unwrap().remove("cpus");
    value["rounds"][0]["kind"] = json!("lunch");
    let v = violations(&value);
    assert_eq!(v.len(), 4, "{v:#?}");
    assert!(v.iter().any(|e| e.contains("surprise_s")));
    assert!(v.iter().any(|e| e.contains("records[0].sent_ns")));
    assert!(v.iter().any(|e| e.contains("missing required key cpus")));
    assert!(v.iter().any(|e| e.contains("lunch")));
}

#[test]
fn round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let r = sample();
    write_json(&path, &r).unwrap();
    let back = read_json(&path).unwrap();
    assert_eq!(back.rounds[1].records, r.rounds[1].records);
    assert_eq!(back.rounds[1].to_record(), rich_round(RoundKind::Query));
    assert_eq!(back.gains, r.gains);
    assert_eq!(
        back.rounds[0].summary.successful_count,
        r.rounds[0].summary.successful_count
    );
    assert_eq!(back.config, r.config);
}

#[test]
fn rejects_other_schema_versions() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["schema_version"] = json!(2);
    let err = RunResult::from_json_str(&value.to_string()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "result file has schema_version 2; this ldqa reads schema_version 1"
    );
    let err = RunResult::from_json_str(r#"{"rounds": []}"#).unwrap_err();
    assert!(matches!(err, ReportError::MissingSchemaVersion { .. }));
    let dir = tempfile::tempdir().unwrap();
    let err = read_json(&dir.path().join("nope.json")).unwrap_err();
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

#[test]
fn gains_need_both_rounds() {
    let r = sample();
    let g = r.gains.unwrap();
    assert!(g.ttft_gain.unwrap() > 1.0, "{g:?}");
    let only = RunResult::new(
        ToolInfo::new("ldqa", "0"),
        Value::Null,
        Environment::detect(None, None),
        &[rich_round(RoundKind::Query)],
    );
    assert_eq!(only.gains, None);
    assert!(only.round(RoundKind::Query).is_some());
    assert!(only.environment.cpus >= 1);
}

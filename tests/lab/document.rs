//! Verdict documents the tests get (from `tracer report`, /report, replays, recordings, or the
//! library) checked against the schema the built binary publishes (`tracer schema`), so the
//! schema cannot drift from what is printed: a mismatch fails the test with its path.

use std::{process::Command, sync::OnceLock};

use serde_json::Value;

/// What `tracer schema` prints, run once per test binary.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .arg("schema")
            .output()
            .expect("running tracer schema");
        assert_eq!(
            out.status.code(),
            Some(0),
            "tracer schema: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("tracer schema prints JSON")
    })
}

/// The validator of the whole document.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(schema()).expect("tracer schema is a valid JSON Schema")
    })
}

/// The validator of the document's `observations` (its `$defs/Report`).
fn observations_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let report = serde_json::json!({
            "$schema": schema()["$schema"],
            "$defs": schema()["$defs"],
            "$ref": "#/$defs/Report",
        });
        jsonschema::draft202012::new(&report).expect("tracer schema's Report is a valid schema")
    })
}

/// Every way `doc` differs from the published schema, as `instance path: what` (empty: it
/// matches).
pub fn mismatches(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("`{}`: {e}", e.instance_path()))
        .collect()
}

/// Fails the test, naming the path of every mismatch, unless `doc` matches `tracer schema`.
pub fn check(doc: &Value) {
    let errors = mismatches(doc);
    assert!(
        errors.is_empty(),
        "the verdict document does not match `tracer schema`:\n{}",
        errors.join("\n")
    );
}

/// Parses a verdict document (JSON text) and checks it against `tracer schema`.
pub fn parse(json: impl AsRef<[u8]>) -> Value {
    let doc: Value = serde_json::from_slice(json.as_ref()).expect("JSON document");
    check(&doc);
    doc
}

/// Checks a document the library built (serialized as `tracer report` prints it).
pub fn check_built(doc: &tracer::judge::document::VerdictDocument) {
    check(&serde_json::to_value(doc).expect("the document serializes"));
}

/// Checks a report the library built against the document's `observations` schema (where it
/// ends up in every document).
pub fn check_observations(report: &tracer::judge::report::Report) {
    let value = serde_json::to_value(report).expect("the report serializes");
    let errors: Vec<String> = observations_validator()
        .iter_errors(&value)
        .map(|e| format!("`/observations{}`: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the observations do not match `tracer schema`:\n{}",
        errors.join("\n")
    );
}

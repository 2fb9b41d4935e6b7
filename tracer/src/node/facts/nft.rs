//! Parser of `nft -j list ruleset` output: the rules that drop or reject, with their counters, as
//! readable text. Pure (text in, rules out); it never runs nft and never panics on bad input.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Firewall;
use crate::node::evidence::FirewallRule;

type Key = (String, String, String);

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn key_of(obj: &Map<String, Value>, name_field: &str) -> Key {
    (
        str_of(obj, "family").to_owned(),
        str_of(obj, "table").to_owned(),
        str_of(obj, name_field).to_owned(),
    )
}

/// The single `{"name": value}` pair of an nft JSON statement or expression.
fn single(value: &Value) -> Option<(&str, &Value)> {
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Meta keys nft prints without the `meta` keyword.
const BARE_META: [&str; 8] = [
    "iif", "oif", "iifname", "oifname", "iiftype", "oiftype", "skuid", "skgid",
];

/// An expression (the left or right side of a match, a map key, a set element) as nft-like text.
fn expr(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(expr).collect::<Vec<_>>().join(","),
        Value::Object(_) => {
            let Some((name, inner)) = single(value) else {
                return compact(value);
            };
            let obj = inner.as_object();
            let field = |k: &str| obj.map(|o| expr(o.get(k).unwrap_or(&Value::Null)));
            match name {
                "payload" => match obj {
                    Some(o) if o.contains_key("protocol") => {
                        format!("{} {}", str_of(o, "protocol"), str_of(o, "field"))
                    }
                    Some(o) => format!(
                        "@{},{},{}",
                        str_of(o, "base"),
                        expr(o.get("offset").unwrap_or(&Value::Null)),
                        expr(o.get("len").unwrap_or(&Value::Null))
                    ),
                    None => compact(value),
                },
                "meta" => {
                    let key = field("key").unwrap_or_default();
                    if BARE_META.contains(&key.as_str()) {
                        key
                    } else {
                        format!("meta {key}")
                    }
                }
                "ct" => match obj {
                    Some(o) if o.contains_key("dir") => {
                        format!("ct {} {}", str_of(o, "dir"), str_of(o, "key"))
                    }
                    Some(o) => format!("ct {}", str_of(o, "key")),
                    None => compact(value),
                },
                "rt" | "socket" | "osf" | "numgen" | "hash" => match obj {
                    Some(o) if o.contains_key("key") => format!("{name} {}", str_of(o, "key")),
                    _ => name.to_owned(),
                },
                "fib" => match obj {
                    Some(o) => {
                        let flags = o
                            .get("flags")
                            .map(|f| match f {
                                Value::Array(a) => {
                                    a.iter().map(expr).collect::<Vec<_>>().join(" . ")
                                }
                                other => expr(other),
                            })
                            .unwrap_or_default();
                        format!("fib {flags} {}", str_of(o, "result"))
                    }
                    None => "fib".to_owned(),
                },
                "prefix" => match obj {
                    Some(o) => format!(
                        "{}/{}",
                        expr(o.get("addr").unwrap_or(&Value::Null)),
                        expr(o.get("len").unwrap_or(&Value::Null))
                    ),
                    None => compact(value),
                },
                "range" => match inner {
                    Value::Array(a) if a.len() == 2 => format!("{}-{}", expr(&a[0]), expr(&a[1])),
                    _ => compact(value),
                },
                "set" => match inner {
                    Value::Array(a) => format!(
                        "{{ {} }}",
                        a.iter().map(element).collect::<Vec<_>>().join(", ")
                    ),
                    other => format!("{{ {} }}", element(other)),
                },
                "elem" => field("val").unwrap_or_else(|| compact(value)),
                "concat" => match inner {
                    Value::Array(a) => a.iter().map(expr).collect::<Vec<_>>().join(" . "),
                    _ => compact(value),
                },
                "&" | "|" | "^" | "<<" | ">>" => match inner {
                    Value::Array(a) if a.len() == 2 => {
                        format!("{} {name} {}", expr(&a[0]), expr(&a[1]))
                    }
                    _ => compact(value),
                },
                "map" => match obj {
                    Some(o) => format!(
                        "{} map {}",
                        expr(o.get("key").unwrap_or(&Value::Null)),
                        expr(o.get("data").unwrap_or(&Value::Null))
                    ),
                    None => compact(value),
                },
                // Verdicts inside maps.
                "drop" | "accept" | "return" | "continue" | "reject" | "jump" | "goto" => {
                    statement(value)
                }
                _ => compact(value),
            }
        }
    }
}

/// A set element: a value, or a `[key, data]` pair of a map.
fn element(value: &Value) -> String {
    match value {
        Value::Array(pair) if pair.len() == 2 => {
            format!("{} : {}", expr(&pair[0]), expr(&pair[1]))
        }
        other => expr(other),
    }
}

/// One statement of a rule as nft-like text (counter values left out: they are in the fields).
fn statement(value: &Value) -> String {
    let Some((name, inner)) = single(value) else {
        return compact(value);
    };
    let obj = inner.as_object();
    match name {
        "match" => match obj {
            Some(o) => {
                let left = expr(o.get("left").unwrap_or(&Value::Null));
                let right = expr(o.get("right").unwrap_or(&Value::Null));
                match str_of(o, "op") {
                    "" | "==" | "in" => format!("{left} {right}"),
                    op => format!("{left} {op} {right}"),
                }
            }
            None => compact(value),
        },
        "counter" => match inner {
            Value::String(counter) => format!("counter name \"{counter}\""),
            _ => "counter".to_owned(),
        },
        "reject" => match obj {
            Some(o) if o.contains_key("expr") => {
                format!("reject with {} {}", str_of(o, "type"), str_of(o, "expr"))
            }
            Some(o) if o.contains_key("type") => format!("reject with {}", str_of(o, "type")),
            _ => "reject".to_owned(),
        },
        "jump" | "goto" => match obj {
            Some(o) => format!("{name} {}", str_of(o, "target")),
            None => name.to_owned(),
        },
        "vmap" => match obj {
            Some(o) => format!(
                "{} vmap {}",
                expr(o.get("key").unwrap_or(&Value::Null)),
                expr(o.get("data").unwrap_or(&Value::Null))
            ),
            None => compact(value),
        },
        "xt" => match obj {
            Some(o) => format!("xt {} {}", str_of(o, "type"), str_of(o, "name")),
            None => "xt".to_owned(),
        },
        _ => match inner {
            Value::Null => name.to_owned(),
            Value::Object(o) => {
                let mut text = name.to_owned();
                for (k, v) in o {
                    text.push(' ');
                    text.push_str(k);
                    let shown = expr(v);
                    if !shown.is_empty() {
                        text.push(' ');
                        text.push_str(&shown);
                    }
                }
                text
            }
            other => format!("{name} {}", expr(other)),
        },
    }
}

/// `drop` or `reject` when the value holds such a verdict anywhere (verdict maps included).
fn verdict_in(value: &Value) -> Option<&'static str> {
    match value {
        Value::Array(items) => items.iter().find_map(verdict_in),
        Value::Object(obj) => {
            if let Some((name, inner)) = single(value) {
                match name {
                    "drop" => return Some("drop"),
                    "reject" => return Some("reject"),
                    _ => {}
                }
                if let Some(v) = xt_verdict(name, inner) {
                    return Some(v);
                }
            }
            obj.values().find_map(verdict_in)
        }
        _ => None,
    }
}

/// iptables-nft's `-j REJECT`/`-j DROP` through the xtables compatibility target.
fn xt_verdict(name: &str, inner: &Value) -> Option<&'static str> {
    if name != "xt" {
        return None;
    }
    let o = inner.as_object()?;
    if str_of(o, "type") != "target" {
        return None;
    }
    match str_of(o, "name") {
        "DROP" => Some("drop"),
        "REJECT" => Some("reject"),
        _ => None,
    }
}

/// The rule's verdict when it drops or rejects: a top-level verdict statement first, then verdict
/// maps.
fn rule_verdict(exprs: &[Value]) -> Option<&'static str> {
    for stmt in exprs {
        if let Some((name, inner)) = single(stmt) {
            match name {
                "drop" => return Some("drop"),
                "reject" => return Some("reject"),
                "vmap" => {
                    if let Some(v) = inner.get("data").and_then(verdict_in) {
                        return Some(v);
                    }
                }
                _ => {
                    if let Some(v) = xt_verdict(name, inner) {
                        return Some(v);
                    }
                }
            }
        }
    }
    None
}

fn counts(obj: &Map<String, Value>) -> (Option<u64>, Option<u64>) {
    (
        obj.get("packets").and_then(Value::as_u64),
        obj.get("bytes").and_then(Value::as_u64),
    )
}

/// The rules of an `nft -j list ruleset` document that drop or reject, seen in namespace
/// `netns`/`label`. Errs (one sentence's worth) only when the text is not such a document.
pub(crate) fn parse(text: &str, netns: u32, label: &str) -> Result<Firewall, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let Some(items) = doc.get("nftables").and_then(Value::as_array) else {
        return Err("it has no \"nftables\" array".to_owned());
    };
    let mut hooks: BTreeMap<Key, String> = BTreeMap::new();
    let mut named: BTreeMap<Key, (Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut out = Firewall::default();
    for item in items {
        if let Some(chain) = item.get("chain").and_then(Value::as_object) {
            if let Some(hook) = chain.get("hook").and_then(Value::as_str) {
                hooks.insert(key_of(chain, "name"), hook.to_owned());
            }
            out.chains.push(str_of(chain, "name").to_owned());
        } else if let Some(counter) = item.get("counter").and_then(Value::as_object) {
            named.insert(key_of(counter, "name"), counts(counter));
        } else if let Some(table) = item.get("table").and_then(Value::as_object) {
            out.tables.push(str_of(table, "name").to_owned());
        }
    }
    let base = |obj: &Map<String, Value>| FirewallRule {
        netns,
        netns_label: label.to_owned(),
        source: "nftables".to_owned(),
        table: format!("{} {}", str_of(obj, "family"), str_of(obj, "table")),
        ..FirewallRule::default()
    };
    for item in items {
        if let Some(chain) = item.get("chain").and_then(Value::as_object) {
            if str_of(chain, "policy") == "drop" {
                out.rules.push(FirewallRule {
                    chain: str_of(chain, "name").to_owned(),
                    hook: chain.get("hook").and_then(Value::as_str).map(str::to_owned),
                    rule: "policy drop".to_owned(),
                    verdict: "drop".to_owned(),
                    ..base(chain)
                });
            }
            continue;
        }
        let Some(rule) = item.get("rule").and_then(Value::as_object) else {
            continue;
        };
        let exprs: &[Value] = rule
            .get("expr")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let Some(verdict) = rule_verdict(exprs) else {
            continue;
        };
        let (family, table, _) = key_of(rule, "chain");
        let mut packets_bytes = (None, None);
        for stmt in exprs {
            match stmt.get("counter") {
                Some(Value::Object(c)) => packets_bytes = counts(c),
                Some(Value::String(name)) => {
                    packets_bytes = named
                        .get(&(family.clone(), table.clone(), name.clone()))
                        .copied()
                        .unwrap_or((None, None));
                }
                _ => {}
            }
        }
        let mut text = exprs.iter().map(statement).collect::<Vec<_>>().join(" ");
        if let Some(comment) = rule.get("comment").and_then(Value::as_str) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("comment \"{comment}\""));
        }
        if text.is_empty() {
            text = format!(
                "handle {}",
                expr(rule.get("handle").unwrap_or(&Value::Null))
            );
        }
        out.rules.push(FirewallRule {
            chain: str_of(rule, "chain").to_owned(),
            hook: hooks.get(&key_of(rule, "chain")).cloned(),
            rule: text,
            verdict: verdict.to_owned(),
            packets: packets_bytes.0,
            bytes: packets_bytes.1,
            ..base(rule)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(text: &str) -> Vec<FirewallRule> {
        parse(text, 1, "host").unwrap().rules
    }

    #[test]
    fn non_rulesets_are_errors_not_panics() {
        for bad in ["", "{", "[]", "null", "{\"nftables\": 3}", "\u{0}\u{ff}"] {
            assert!(parse(bad, 0, "host").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn odd_shapes_never_panic() {
        let odd = [
            r#"{"nftables":[1,"x",null,{"rule":null},{"rule":{}},{"chain":{"policy":"drop"}}]}"#,
            r#"{"nftables":[{"rule":{"expr":[{"drop":null,"accept":null},{"match":3},{"vmap":{"data":{"set":[[1],[1,{"reject":7}]]}}}]}}]}"#,
            r#"{"nftables":[{"rule":{"expr":[{"counter":"nope"},{"counter":{"packets":-1}},{"range":[1]},{"set":5},{"drop":null}]}}]}"#,
            r#"{"nftables":[{"rule":{"expr":[{"match":{"left":{"payload":7},"right":{"prefix":3},"op":5}},{"xt":{"type":"target","name":"REJECT"}}]}}]}"#,
        ];
        for text in odd {
            let _ = parse(text, 0, "host");
        }
        let rules = rules_of(odd[2]);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].verdict, "drop");
        assert_eq!(rules[0].packets, None);
        let rules = rules_of(odd[3]);
        assert_eq!(rules[0].verdict, "reject");
        let chain_policy = rules_of(odd[0]);
        assert_eq!(chain_policy.len(), 1);
        assert_eq!(chain_policy[0].rule, "policy drop");
    }

    #[test]
    fn verdict_only_and_xtables_rules_read_plainly() {
        let rules = rules_of(
            r#"{"nftables":[{"rule":{"family":"ip","table":"t","chain":"c","handle":9,"expr":[{"drop":null}]}}]}"#,
        );
        assert_eq!(rules[0].rule, "drop");
        let rules = rules_of(
            r#"{"nftables":[{"rule":{"family":"ip","table":"t","chain":"c","handle":9,"expr":[{"xt":{"type":"target","name":"DROP"}}]}}]}"#,
        );
        assert_eq!(rules[0].rule, "xt target DROP");
        assert_eq!(rules[0].table, "ip t");
        assert_eq!(rules[0].hook, None);
    }
}

/// Property tests: any JSON shape under `nftables`, and the recorded ruleset mangled, gives
/// rules or one error; every rule drops or rejects, counts only the document's own numbers.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    const RULESETS: &[&str] = &[include_str!(
        "../../../../tests/fixtures/facts/node/nft-ruleset.json"
    )];

    /// JSON values shaped like nft's: objects with its keys, verdicts, counters, nesting.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            prop::sample::select(vec![
                "drop", "reject", "accept", "DROP", "REJECT", "input", "inet", "filter", "x",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop::sample::select(vec![
                            "drop", "reject", "accept", "jump", "goto", "counter", "match", "left",
                            "right", "op", "payload", "meta", "vmap", "map", "set", "data", "xt",
                            "type", "name", "expr", "family", "table", "chain", "hook", "policy",
                            "packets", "bytes", "comment", "handle", "prefix", "range", "target",
                            "rule",
                        ]),
                        inner,
                    ),
                    0..5,
                )
                .prop_map(|pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    fn check(text: &str, fw: &Firewall) -> Result<(), TestCaseError> {
        for rule in &fw.rules {
            prop_assert!(
                rule.verdict == "drop" || rule.verdict == "reject",
                "{rule:?}"
            );
            for n in [rule.packets, rule.bytes].into_iter().flatten() {
                prop_assert!(text.contains(&n.to_string()), "count {n} not in the text");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_nft_shaped_document(items in proptest::collection::vec(value(), 0..8)) {
            let text = serde_json::json!({ "nftables": items }).to_string();
            let fw = parse(&text, 1, "host").unwrap();
            check(&text, &fw)?;
        }

        /// Rules with arbitrary expressions: a rule is kept exactly when one of its statements
        /// is a verdict, and its text is built without panicking whatever the shape.
        #[test]
        fn rules_with_any_expressions(exprs in proptest::collection::vec(value(), 0..6), chain_policy in any::<bool>()) {
            let doc = serde_json::json!({ "nftables": [
                { "chain": { "family": "ip", "table": "t", "name": "c", "hook": "input",
                             "policy": if chain_policy { "drop" } else { "accept" } } },
                { "rule": { "family": "ip", "table": "t", "chain": "c", "handle": 3, "expr": exprs } },
            ]});
            let text = doc.to_string();
            let fw = parse(&text, 1, "host").unwrap();
            check(&text, &fw)?;
            prop_assert_eq!(fw.rules.iter().filter(|r| r.rule == "policy drop").count(), usize::from(chain_policy));
            prop_assert!(fw.rules.len() <= 2);
        }

        #[test]
        fn any_text(text in "\\PC{0,80}") {
            if let Ok(fw) = parse(&text, 1, "host") {
                check(&text, &fw)?;
            }
        }

        #[test]
        fn mangled_ruleset((_, text) in mutated(RULESETS)) {
            match parse(&text, 1, "host") {
                Ok(fw) => check(&text, &fw)?,
                Err(e) => prop_assert!(e.starts_with("it "), "{e}"),
            }
        }
    }

    /// serde_json stops at 128 levels; a document near that depth is walked without
    /// exhausting a test thread's stack.
    #[test]
    fn the_deepest_accepted_nesting_is_walked() {
        let depth = 110;
        let inner = format!(
            "{}{{\"drop\":null}}{}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let text = format!(
            "{{\"nftables\":[{{\"rule\":{{\"chain\":\"c\",\"expr\":[{{\"match\":{{\"left\":{inner},\"right\":1}}}},{{\"drop\":null}}]}}}}]}}"
        );
        let fw = parse(&text, 1, "host").unwrap();
        assert_eq!(fw.rules.len(), 1);
        assert!(parse(
            &format!("{{\"nftables\":{}{}}}", "[".repeat(200), "]".repeat(200)),
            1,
            "h"
        )
        .is_err());
    }
}

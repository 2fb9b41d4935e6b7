//! Parser of `iptables-legacy-save -c` / `ip6tables-legacy-save -c` text: the rules and chain
//! policies that drop or reject, with their counters. Pure; it never runs iptables and never panics.

use super::Firewall;
use crate::node::evidence::FirewallRule;

/// Splits a rule line into words the way a shell would for iptables-save output: double quotes
/// group words (comments), a backslash escapes the next character.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// `[packets:bytes]` → the two counts.
fn counters(text: &str) -> Option<(u64, u64)> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// Netfilter hook of a built-in chain.
fn hook_of(chain: &str) -> Option<String> {
    match chain {
        "INPUT" | "FORWARD" | "OUTPUT" | "PREROUTING" | "POSTROUTING" => {
            Some(chain.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Drop/reject rules and `DROP` policies of one `*-save -c` text. `ipv6` names the tables
/// `ip6 TABLE` (ip6tables), otherwise just `TABLE`. Lines it cannot read are skipped.
pub(crate) fn parse(text: &str, ipv6: bool, netns: u32, label: &str) -> Firewall {
    let mut out = Firewall::default();
    let mut table = String::new();
    let table_name = |t: &str| {
        if ipv6 {
            format!("ip6 {t}")
        } else {
            t.to_owned()
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            table = name.trim().to_owned();
            out.tables.push(table.clone());
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            // `:CHAIN POLICY [packets:bytes]`, policy `-` for user chains.
            let mut parts = decl.split_whitespace();
            let (Some(chain), Some(policy)) = (parts.next(), parts.next()) else {
                continue;
            };
            out.chains.push(chain.to_owned());
            if policy == "DROP" {
                let (packets, bytes) = parts.next().and_then(counters).unzip();
                out.rules.push(FirewallRule {
                    netns,
                    netns_label: label.to_owned(),
                    source: "iptables-legacy".to_owned(),
                    table: table_name(&table),
                    chain: chain.to_owned(),
                    hook: hook_of(chain),
                    rule: "policy drop".to_owned(),
                    verdict: "drop".to_owned(),
                    packets,
                    bytes,
                });
            }
            continue;
        }
        // `[packets:bytes] -A CHAIN …` (with -c) or `-A CHAIN …`.
        let (count, rule_text) = match line.split_once(' ') {
            Some((first, rest)) if first.starts_with('[') => (counters(first), rest.trim()),
            _ => (None, line),
        };
        let w = words(rule_text);
        if w.first().map(String::as_str) != Some("-A") {
            continue;
        }
        let Some(chain) = w.get(1) else { continue };
        let target = w
            .iter()
            .position(|x| x == "-j" || x == "--jump")
            .and_then(|i| w.get(i + 1));
        let verdict = match target.map(String::as_str) {
            Some("DROP") => "drop",
            Some("REJECT") => "reject",
            _ => continue,
        };
        let (packets, bytes) = count.unzip();
        out.rules.push(FirewallRule {
            netns,
            netns_label: label.to_owned(),
            source: "iptables-legacy".to_owned(),
            table: table_name(&table),
            chain: chain.clone(),
            hook: hook_of(chain),
            rule: rule_text.to_owned(),
            verdict: verdict.to_owned(),
            packets,
            bytes,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_comments_do_not_fool_the_target() {
        let fw = parse(
            "*filter\n[1:2] -A X -m comment --comment \"say -j DROP\" -j ACCEPT\n[3:4] -A X -j REJECT --reject-with tcp-reset\n",
            false,
            0,
            "host",
        );
        assert_eq!(fw.rules.len(), 1);
        assert_eq!(fw.rules[0].verdict, "reject");
        assert_eq!(fw.rules[0].packets, Some(3));
        assert_eq!(fw.rules[0].hook, None);
    }

    #[test]
    fn without_counters_and_in_ipv6() {
        let fw = parse(
            "*filter\n:INPUT DROP\n-A FORWARD -j DROP\n",
            true,
            0,
            "host",
        );
        assert_eq!(fw.rules.len(), 2);
        assert_eq!(fw.rules[0].table, "ip6 filter");
        assert_eq!(fw.rules[0].packets, None);
        assert_eq!(fw.rules[1].rule, "-A FORWARD -j DROP");
        assert_eq!(fw.rules[1].hook.as_deref(), Some("forward"));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "*",
            ":",
            ": DROP",
            "[",
            "[1:x] -A",
            "[99999999999999999999999:1] -A C -j DROP",
            "-A",
            "-A C -j",
            "\"\\",
            "\u{0}\u{ff}[::] -A -j DROP",
        ] {
            let _ = parse(text, false, 0, "host");
        }
        let fw = parse("[99999999999999999999999:1] -A C -j DROP", false, 0, "h");
        assert_eq!(fw.rules[0].packets, None);
    }
}

/// Property tests: any text and the recorded `iptables-save -c` mangled give only drop/reject
/// rules of chains the text names, with counts the text holds.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    const SAVES: &[&str] = &[include_str!(
        "../../../../tests/fixtures/facts/node/iptables-save.txt"
    )];

    fn check(text: &str, fw: &Firewall) -> Result<(), TestCaseError> {
        for rule in &fw.rules {
            prop_assert!(
                rule.verdict == "drop" || rule.verdict == "reject",
                "{rule:?}"
            );
            // Words are read as a shell would (quotes group, backslashes escape), so a chain
            // name is in the text once quotes and backslashes are taken out.
            let unquoted = text.replace(['"', '\\'], "");
            prop_assert!(
                unquoted.contains(&rule.chain.replace(['"', '\\'], "")),
                "{rule:?}"
            );
            if let (Some(p), Some(b)) = (rule.packets, rule.bytes) {
                let in_text = text
                    .split_whitespace()
                    .filter_map(counters)
                    .any(|c| c == (p, b));
                prop_assert!(in_text, "{rule:?}");
            } else {
                prop_assert_eq!(rule.packets, None);
                prop_assert_eq!(rule.bytes, None);
            }
        }
        prop_assert!(fw.rules.len() <= text.lines().count());
        Ok(())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text(text in "\\PC{0,200}") {
            check(&text, &parse(&text, false, 1, "host"))?;
        }

        #[test]
        fn save_like_lines(lines in proptest::collection::vec(prop_oneof![
            "\\*[a-z]{0,6}",
            ":[A-Z]{0,6} (DROP|ACCEPT|-)( \\[[0-9]{0,21}:[0-9]{0,21}\\])?",
            "(\\[[0-9-]{0,21}:[0-9a-z]{0,21}\\] )?-A [A-Z]{0,6}( -[a-z] [a-z\"\\\\ ]{0,8}){0,3}( (-j|--jump) (DROP|REJECT|ACCEPT))?",
            "[ -~]{0,30}",
        ], 0..12)) {
            let text = lines.join("\n");
            check(&text, &parse(&text, true, 1, "host"))?;
        }

        #[test]
        fn mangled_save((_, text) in mutated(SAVES)) {
            check(&text, &parse(&text, false, 1, "host"))?;
        }
    }
}

//! The source tree's shape, checked: every stage uses only the stages before it (kernel → node →
//! judge → present → modes), and no two modules import each other, directly or around a circle.
//! Reads the crate's own source files; test-only.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The stages in data-flow order.
const STAGES: &[(&str, u8)] = &[
    ("kernel", 0),
    ("node", 1),
    ("judge", 2),
    ("present", 3),
    ("modes", 4),
];

fn rank(stage: &str) -> Option<u8> {
    STAGES.iter().find(|(s, _)| *s == stage).map(|(_, r)| *r)
}

/// `stage/module` of a source file (`node/counters/parse.rs` → `node/counters`), or `None` for
/// the crate root, the binary and test helpers.
fn module_of(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let stage = parts.first()?;
    rank(stage)?;
    if parts.len() == 1 {
        return Some(stage.clone());
    }
    match parts.get(1).map(String::as_str) {
        Some("mod") | None => Some(stage.clone()),
        Some(module) => Some(format!("{stage}/{}", module.trim_end_matches("_tests"))),
    }
}

/// Source text without `//` comments and without a trailing `#[cfg(test)]` test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines.peek().is_some_and(|next| {
                let n = next.trim_start();
                n.starts_with("mod ") || n.starts_with("#[") || n.starts_with("pub(crate) mod ")
            })
        {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every `crate::…` path in `code`, groups expanded, as their first two segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while let Some(at) = find(&bytes, i, "crate::") {
        let before = at.checked_sub(1).map(|b| bytes[b]);
        i = at + "crate::".len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut found = Vec::new();
        parse_tree(&bytes, &mut i, Vec::new(), &mut found);
        paths.extend(found);
    }
    paths
}

fn find(text: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..text.len().saturating_sub(needle.len() - 1)).find(|&i| text[i..].starts_with(&needle))
}

/// Parses `a::b::{c, d::{e}}` at `i`, pushing each path (prefix included, at most 2 segments).
fn parse_tree(text: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while *i < text.len() && text[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(i);
        if *i < text.len() && text[*i] == '{' {
            *i += 1;
            loop {
                skip_ws(i);
                if *i >= text.len() || text[*i] == '}' {
                    *i += 1;
                    break;
                }
                parse_tree(text, i, path.clone(), out);
                skip_ws(i);
                if *i < text.len() && text[*i] == ',' {
                    *i += 1;
                }
            }
            return;
        }
        let start = *i;
        while *i < text.len() && (text[*i].is_alphanumeric() || text[*i] == '_') {
            *i += 1;
        }
        if start == *i {
            break;
        }
        path.push(text[start..*i].iter().collect());
        if text[*i..].starts_with(&[':', ':']) {
            *i += 2;
        } else {
            break;
        }
    }
    if path.len() >= 2 && path[0] != "self" {
        path.truncate(2);
        out.push(path);
    } else if path.len() == 1 {
        out.push(path);
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the modules it uses (other than itself).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let Some(from) = module_of(relative) else {
            continue;
        };
        // Files that are test code as a whole (included under `#[cfg(test)]`).
        let name = relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "tests.rs" || name.ends_with("_tests.rs") || name == "fixtures.rs" {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        let uses = graph.entry(from.clone()).or_default();
        for path in crate_paths(&code_of(&text)) {
            let Some(stage) = path.first() else { continue };
            if rank(stage).is_none() {
                continue;
            }
            let to = match path.get(1) {
                Some(module) => format!("{stage}/{module}"),
                None => stage.clone(),
            };
            if to != from {
                uses.insert(to);
            }
        }
    }
    graph
}

fn stage_of(module: &str) -> &str {
    module.split('/').next().unwrap_or(module)
}

#[test]
fn stages_use_only_earlier_stages() {
    let graph = import_graph();
    assert!(graph.len() > 30, "only {} modules found", graph.len());
    let mut wrong = Vec::new();
    for (from, uses) in &graph {
        for to in uses {
            if rank(stage_of(to)) > rank(stage_of(from)) {
                wrong.push(format!("{from} uses {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a stage uses a later one:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_go_around_a_circle() {
    let graph = import_graph();
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_owned());
            circles.push(circle.join(" → "));
            return;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, circles);
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_path_parser_expands_groups() {
    let code = "use crate::{judge::{report::Report, flows}, node::pods::Pods};\nlet x = crate::kernel::btf::load();";
    let paths = crate_paths(code);
    let flat: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        flat,
        ["judge::report", "judge::flows", "node::pods", "kernel::btf"]
    );
    assert_eq!(
        module_of(Path::new("node/counters/parse.rs")).as_deref(),
        Some("node/counters")
    );
    assert_eq!(
        module_of(Path::new("kernel/startup_tests.rs")).as_deref(),
        Some("kernel/startup")
    );
    assert_eq!(module_of(Path::new("main.rs")), None);
}

//! Structured mutations of recorded kernel text for the parsers' property tests: cut at any
//! byte, lines deleted, doubled or swapped, numbers swapped for huge, negative or non-numeric
//! ones, separators dropped, garbage inserted. Test-only.

use proptest::prelude::*;

/// Numbers no counter file holds: past `u64`, past `u32`, negative, not numbers at all.
pub const ODD_NUMBERS: [&str; 12] = [
    "18446744073709551616",
    "99999999999999999999999999",
    "18446744073709551615",
    "4294967296",
    "-1",
    "-9223372036854775809",
    "0x",
    "ff",
    "1e9",
    "NaN",
    "",
    "１２",
];

/// Separators the kernel's text files use.
const SEPARATORS: [char; 8] = [':', ';', ' ', '\t', '[', ']', '|', '='];

/// One edit of a text. Indices are taken modulo what the text has.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Keep only the first N bytes (rounded down to a character boundary).
    Truncate(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace the Nth run of ASCII digits with one of [`ODD_NUMBERS`].
    ReplaceNumber(usize, &'static str),
    /// Remove every occurrence of a separator from line N.
    DropSeparator(usize, char),
    /// Insert text at byte N (rounded down to a character boundary).
    Insert(usize, String),
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn edit_lines(text: &str, f: impl FnOnce(&mut Vec<&str>)) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    f(&mut lines);
    lines.join("\n")
}

/// `text` with `m` applied.
pub fn apply(text: &str, m: &Mutation) -> String {
    let line_count = text.split('\n').count().max(1);
    match m {
        Mutation::Truncate(n) => text[..floor_boundary(text, n % (text.len() + 1))].to_owned(),
        Mutation::DeleteLine(i) => edit_lines(text, |l| {
            l.remove(i % line_count);
        }),
        Mutation::DuplicateLine(i) => edit_lines(text, |l| {
            let at = i % line_count;
            let line = l[at];
            l.insert(at, line);
        }),
        Mutation::SwapLines(i, j) => edit_lines(text, |l| l.swap(i % line_count, j % line_count)),
        Mutation::ReplaceNumber(n, with) => {
            let runs: Vec<(usize, usize)> = {
                let mut runs = Vec::new();
                let mut start = None;
                for (i, c) in text.char_indices() {
                    match (c.is_ascii_digit(), start) {
                        (true, None) => start = Some(i),
                        (false, Some(s)) => {
                            runs.push((s, i));
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    runs.push((s, text.len()));
                }
                runs
            };
            if runs.is_empty() {
                return text.to_owned();
            }
            let (a, b) = runs[n % runs.len()];
            format!("{}{with}{}", &text[..a], &text[b..])
        }
        Mutation::DropSeparator(i, sep) => {
            let at = i % line_count;
            text.split('\n')
                .enumerate()
                .map(|(k, line)| {
                    if k == at {
                        line.replace(*sep, "")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Mutation::Insert(n, what) => {
            let at = floor_boundary(text, n % (text.len() + 1));
            format!("{}{what}{}", &text[..at], &text[at..])
        }
    }
}

/// Text worth inserting: printable ASCII, any characters, a newline, a NUL, a colon.
fn inserted() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        "\\PC{0,6}",
        Just("\n".to_owned()),
        Just("\u{0}".to_owned()),
        Just(":".to_owned()),
    ]
}

/// Any one mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<usize>();
    prop_oneof![
        1 => index.prop_map(Mutation::Truncate),
        1 => index.prop_map(Mutation::DeleteLine),
        1 => index.prop_map(Mutation::DuplicateLine),
        1 => (index, index).prop_map(|(i, j)| Mutation::SwapLines(i, j)),
        3 => (index, prop::sample::select(&ODD_NUMBERS[..]))
            .prop_map(|(i, n)| Mutation::ReplaceNumber(i, n)),
        1 => (index, prop::sample::select(&SEPARATORS[..]))
            .prop_map(|(i, c)| Mutation::DropSeparator(i, c)),
        1 => (index, inserted()).prop_map(|(i, s)| Mutation::Insert(i, s)),
    ]
}

/// One of `bases` after one to four mutations: (which base, the text).
pub fn mutated(bases: &'static [&'static str]) -> impl Strategy<Value = (usize, String)> {
    (0..bases.len(), proptest::collection::vec(mutation(), 1..=4)).prop_map(
        move |(which, edits)| {
            let text = edits
                .iter()
                .fold(bases[which].to_owned(), |text, m| apply(&text, m));
            (which, text)
        },
    )
}

/// The proptest configuration of the parser tests: `cases` cases, no regression files written
/// into the source tree (minimised failures become unit tests instead), and a fixed seed so a
/// run is reproducible (CI never flakes); `PROPTEST_RNG_SEED=N` explores other inputs.
pub fn config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        base.rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(0x7ace_0007)
    };
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed,
        ..base
    }
}

#[test]
fn mutations_do_what_they_say() {
    let text = "a: 1 2\nb: 33\n";
    assert_eq!(apply(text, &Mutation::Truncate(4)), "a: 1");
    assert_eq!(apply(text, &Mutation::DeleteLine(0)), "b: 33\n");
    assert_eq!(
        apply(text, &Mutation::DuplicateLine(1)),
        "a: 1 2\nb: 33\nb: 33\n"
    );
    assert_eq!(apply(text, &Mutation::SwapLines(0, 1)), "b: 33\na: 1 2\n");
    assert_eq!(
        apply(text, &Mutation::ReplaceNumber(2, "-1")),
        "a: 1 2\nb: -1\n"
    );
    assert_eq!(
        apply(text, &Mutation::DropSeparator(1, ':')),
        "a: 1 2\nb 33\n"
    );
    assert_eq!(
        apply(text, &Mutation::Insert(1, "é".into())),
        "aé: 1 2\nb: 33\n"
    );
    assert_eq!(apply("é", &Mutation::Truncate(1)), "");
}

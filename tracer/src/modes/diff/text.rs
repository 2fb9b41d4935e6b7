//! A comparison for a person at a terminal: both sides' verdicts, the differences that explain
//! the affected node (best first), those that do not, and the notes.

use std::fmt::Write as _;

use super::difference::{Difference, NodeDiff};

impl NodeDiff {
    /// For a person at a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (role, s) in [("AFFECTED", &self.affected), ("HEALTHY ", &self.healthy)] {
            let _ = writeln!(
                out,
                "{role}  {}  ({}, {:.0} s): {} in layer {}, {} packets lost, confidence {:.2}",
                s.name,
                s.input,
                s.window_s,
                s.root_cause,
                s.failure_layer,
                s.lost_packets,
                s.confidence
            );
        }
        let (explaining, rest): (Vec<&Difference>, Vec<&Difference>) =
            self.differences.iter().partition(|d| d.score > 0.0);
        if self.differences.is_empty() {
            let _ = writeln!(out, "\nNo difference found.");
        }
        let mut table = |title: &str, rows: &[&Difference]| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}");
            for d in rows {
                let _ = writeln!(
                    out,
                    "  {:.2}  {:<13} {}",
                    d.score,
                    d.kind.label(),
                    d.subject
                );
                let _ = writeln!(
                    out,
                    "        affected {}   healthy {}",
                    d.affected, d.healthy
                );
                let _ = writeln!(out, "        {}", d.why);
            }
        };
        table("Differences, most explaining first", &explaining);
        table("Differences that do not explain the affected node", &rest);
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

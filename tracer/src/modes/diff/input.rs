//! One node's input on the command line: a verdict document (JSON or YAML, read through
//! [`DocumentView`]) or a recording, judged like `report --replay`, which also keeps the raw
//! counters and facts at both ends. [`NodeInput::load`] is the one reader of files in `diff`.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::view::DocumentView;
use crate::{
    judge::window::judge,
    modes::recording::{Recording, FORMAT as RECORDING_FORMAT},
    node::evidence::{CounterSample, NodeFacts},
};

/// What a recording adds to its document: the raw counters and facts at both ends.
#[derive(Debug, Clone, Default)]
pub struct RecordedDetail {
    pub counters_start: CounterSample,
    pub counters_end: CounterSample,
    pub facts_start: NodeFacts,
    pub facts_end: NodeFacts,
}

/// One node's window, as given on the command line.
#[derive(Debug, Clone)]
pub struct NodeInput {
    /// For people: the file name or endpoint.
    pub name: String,
    pub document: DocumentView,
    /// Present when the input was a recording.
    pub detail: Option<RecordedDetail>,
}

impl NodeInput {
    /// Reads a verdict document (JSON or YAML) or a recording (judged like `report --replay`).
    pub fn load(path: &Path) -> Result<NodeInput> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
            .with_context(|| format!("{} cannot be compared", path.display()))
    }

    /// As [`NodeInput::load`], from text.
    pub fn parse(name: &str, text: &str) -> Result<NodeInput> {
        let is_recording = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v["format"] == RECORDING_FORMAT);
        if !is_recording {
            return Ok(NodeInput {
                name: name.to_owned(),
                document: DocumentView::parse(text)?,
                detail: None,
            });
        }
        let recording = Recording::parse(text)?;
        let frames = recording.frames();
        let judged = judge(
            &frames,
            &recording.meta,
            &recording.symbols,
            recording.scope.as_ref(),
            &recording.facts_start,
            &recording.facts_end,
            &[format!("replayed from {name}")],
        );
        Ok(NodeInput {
            name: name.to_owned(),
            document: DocumentView::of(&judged.document)?,
            detail: Some(RecordedDetail {
                counters_start: judged.evidence.counters_start,
                counters_end: judged.evidence.counters_end,
                facts_start: NodeFacts::clone(&judged.evidence.facts_start),
                facts_end: NodeFacts::clone(&judged.evidence.facts_end),
            }),
        })
    }
}

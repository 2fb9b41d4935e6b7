//! Pure judging: drops to layers (layers), the probes' observations named (report), per
//! destination flows (flows), the D7 rules (verdict), frames to a judged window (window) and the
//! verdict document (document). No clock, no I/O. May use `kernel` and `node`.

pub mod document;
pub mod flows;
pub mod layers;
pub mod report;
pub mod verdict;
pub mod window;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod window_steps_tests;

//! Rendering what was judged: the text summary (dashboard), OpenMetrics (metrics) and the live
//! terminal dashboard (tui). Reads documents and windows; never gathers data itself.

pub mod dashboard;
pub mod metrics;
pub mod tui;

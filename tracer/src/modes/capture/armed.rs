//! `tracer report --capture FILE`: a capture armed for the report's window. Every drop in the
//! window's scope is held (bounded) while the window runs; once the verdict is known, the
//! winning layer's drops are written to FILE and the file and its packet count join the
//! verdict's evidence. With no winning layer the file holds every drop held.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{anyhow, Result};
use tracer_common::capture::CaptureEvent;

use super::{
    filter::{parse_layer, CaptureFilter},
    run::{kernel_config, CaptureKernel, PacketSink},
};
use crate::{
    judge::{document::VerdictDocument, verdict::EvidenceItem},
    kernel::capture::{BufferKind, CaptureCounters, CaptureSession},
};

/// Most events held while the window runs (~300 bytes each); more are counted as lost.
pub const MAX_HELD: usize = 50_000;
/// Packets written at most, bytes of each, rate limit and file size (as `tracer capture`'s
/// defaults).
const MAX_PACKETS: u64 = 1000;
const SNAPLEN: u32 = 128;
const RATE: u64 = 10_000;
const MAX_BYTES: u64 = 64 << 20;

type Held = (Vec<CaptureEvent>, u64, CaptureCounters);

/// A capture running beside a report's window.
pub struct ArmedCapture {
    kernel: CaptureKernel,
    buffer: BufferKind,
    file: PathBuf,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Held>,
}

/// Attaches the capture program (drops of namespace `netns`, or all) and starts holding events.
pub fn arm(file: PathBuf, netns: Option<u32>) -> Result<ArmedCapture> {
    let kernel = CaptureKernel::read()?;
    let filter = CaptureFilter {
        netns,
        ..CaptureFilter::default()
    };
    let config = kernel_config(&kernel, &filter, None, SNAPLEN, RATE);
    let buffer = BufferKind::for_this_kernel()?;
    let mut session =
        CaptureSession::start(&kernel.tracer_config, &config, false, buffer, &kernel.hooks)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut over = 0u64;
        let mut take = |e: &CaptureEvent| {
            if held.len() < MAX_HELD {
                held.push(*e);
            } else {
                over += 1;
            }
        };
        while !stopped.load(Ordering::SeqCst) {
            session.drain(&mut take);
            std::thread::sleep(Duration::from_millis(20));
        }
        session.drain(&mut take);
        let counters = session.counters();
        (held, over, counters)
    });
    Ok(ArmedCapture {
        kernel,
        buffer,
        file,
        stop,
        thread,
    })
}

impl ArmedCapture {
    /// Detaches, writes the winning layer's drops to the file, and adds the file and its
    /// packet count to the document's evidence. Returns the summary text.
    pub fn finish(self, document: &mut VerdictDocument) -> Result<String> {
        self.stop.store(true, Ordering::SeqCst);
        let (held, over, counters) = self
            .thread
            .join()
            .map_err(|_| anyhow!("the capture thread panicked"))?;
        let layer = parse_layer(&document.failure_layer).ok();
        let (index, _) = crate::node::pods::PodIndex::scan(&crate::node::pods::PodRoots::live());
        let pods = index.labels();
        let mut sink = PacketSink::open(
            &self.kernel,
            &self.file,
            SNAPLEN,
            MAX_BYTES,
            &pods,
            layer,
            MAX_PACKETS,
        )?;
        for event in &held {
            sink.add(event)?;
        }
        let mut outcome = sink.finish(counters, self.buffer)?;
        outcome.summary.over_max_packets += over;
        let what = match layer {
            Some(layer) => format!("the {} layer's drops", layer.as_str()),
            None => "every drop (no layer won)".to_owned(),
        };
        let lost = outcome.summary.lost();
        document.evidence.push(EvidenceItem {
            kind: "packet_capture".to_owned(),
            content: format!(
                "{}: {} packets of {what} during the window, each with its drop reason and \
                 location (pcapng; `tshark -r {} -T fields -e frame.comment`){}",
                outcome.file,
                outcome.summary.packets,
                outcome.file,
                if lost > 0 {
                    format!("; {lost} more not written (limits)")
                } else {
                    String::new()
                }
            ),
        });
        Ok(outcome.summary.render(&outcome.file))
    }
}

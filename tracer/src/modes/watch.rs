//! A live window: takes a frame (probe maps + every counter) when told, the node's facts at the
//! start (read in the background while the window runs; judging waits for them) and the end,
//! and judges the frames with `window::judge`. The first frame's counters (every namespace) are
//! read in the background too, so the window opens as soon as the probes are attached; the next
//! frame and any judging wait for them. Also keeps a bounded rolling window for the
//! dashboard and writes recordings. The caller owns time (passes milliseconds).

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Mutex, OnceLock, PoisonError},
    thread::JoinHandle,
};

use anyhow::Result;

use crate::{
    judge::report::Symbolize,
    judge::window::{judge_with_steps, Frame, Judged, Steps},
    modes::live::LiveTracer,
    modes::recording::{RecFrame, RecSnapshot, Recording, FORMAT, VERSION},
    node::counters::{CounterSource, SamplePlan},
    node::evidence::{CounterSample, NodeFacts},
    node::facts::{FactsCache, FactsSource},
    node::netns::NetnsScope,
    node::shared::Shared,
};
use tracer_common::DropKey;

/// A window in progress.
pub struct Watch {
    counters: CounterSource,
    facts: FactsSource,
    scope: Option<NetnsScope>,
    frames: VecDeque<Frame>,
    /// The facts at the start, being read in the background; taken by [`Watch::settled`].
    pending: Mutex<Option<JoinHandle<FactsState>>>,
    /// The facts, once read.
    state: OnceLock<FactsState>,
    /// Namespaces where the kernel counted netfilter drops since the facts were last read:
    /// their rules are listed again at the next read (their counters rose).
    netfilter_drops: BTreeSet<u32>,
    /// Most frames kept (rolling windows); None keeps all.
    keep: Option<usize>,
    /// Long rolling windows: frames older than the newest `dense` are thinned to one per
    /// `stride_ms`, so memory grows with the window's length over the stride, not its seconds.
    thin: Option<Thinning>,
    /// Read the per-destination maps at the window's ends only (report, flows); rolling
    /// windows and recordings read them every frame.
    lean: bool,
    /// Frames (by `at_ms`) that thinning keeps whole: the starts of forward windows in
    /// progress (`tracer mcp`'s `live_network_report`).
    pins: BTreeSet<u64>,
    /// `at_ms` of the newest frame that read every namespace's counters.
    full_at: Option<u64>,
    /// What the counters did between the frames kept, computed once per pair of frames.
    steps: Steps,
    /// The first frame's counters while they are read in the background.
    first_read: Mutex<FirstRead>,
    /// Drop sites (reason, location) seen so far, and whether they are noise: a namespace
    /// whose only drops are noise is not promoted to be read every second.
    noise_sites: HashMap<(u32, u64), bool>,
    /// Drop sites (reason, location) seen so far, and whether they place the drop outside
    /// netfilter (see [`netfilter_namespaces`]).
    non_netfilter_sites: HashMap<(u32, u64), bool>,
}

/// Whether a drop never decides a verdict (multicast not for this host, teardown purges…):
/// such drops do not make a namespace active.
fn is_noise(tracer: &LiveTracer, key: &DropKey) -> bool {
    let (reason, _) = crate::judge::report::reason_label(key.reason, &tracer.names);
    let location = tracer.symbols().label(key.location);
    let noise = matches!(
        crate::judge::layers::classify(&reason, &location),
        crate::judge::layers::DropClass::Noise { .. }
    );
    // Once per drop site: which sites promote namespaces to be read every second.
    tracing::debug!(
        "drop site {reason} at {location} (first seen in netns {}): {}",
        key.netns,
        if noise {
            "noise, does not promote"
        } else {
            "promotes its namespace"
        }
    );
    noise
}

/// Whether a drop site's class (its reason, or its location where the reason does not tell)
/// is anything but netfilter's or unplaced: such a drop raised no rule's counter.
fn placed_outside_netfilter(tracer: &LiveTracer, key: &DropKey) -> bool {
    let (reason, _) = crate::judge::report::reason_label(key.reason, &tracer.names);
    outside_netfilter(&reason, &tracer.symbols().label(key.location))
}

/// [`placed_outside_netfilter`] for a named reason and a symbolised location.
fn outside_netfilter(reason: &str, location: &str) -> bool {
    use crate::judge::layers::{classify, DropClass, Layer};
    !matches!(
        classify(reason, location),
        DropClass::Unplaced
            | DropClass::Loss {
                layer: Layer::IptablesNetpolicy,
                ..
            }
    )
}

/// The first frame's counters: every namespace read on a thread of its own, so the window
/// opens without waiting for them (250 namespaces take ~0.1 s). The source travels with the
/// read (it remembers the namespaces it opened) and comes back with the sample.
enum FirstRead {
    /// Being read.
    Reading(JoinHandle<(CounterSource, CounterSample)>),
    /// Read, not yet in the first frame (judged before the next frame was taken).
    Read(Box<(CounterSource, CounterSample)>),
    /// In the first frame (or read there directly).
    Done,
}

/// How a long rolling window keeps its older frames.
#[derive(Debug, Clone, Copy)]
pub struct Thinning {
    /// The per-destination maps (up to thousands of destinations with two histograms each,
    /// ~1 KB apiece) stay only in the newest two frames and the first frame of every
    /// `flow_maps_stride_ms`; windows start at such a frame so their `flows` section is whole.
    pub flow_maps_stride_ms: u64,
    /// Newest frames kept at one per second.
    pub dense: usize,
    /// Older frames: the first of every `stride_ms`.
    pub stride_ms: u64,
    /// Frames older than this (relative to the newest) are dropped.
    pub max_age_ms: u64,
}

/// Applies `t` after a frame was pushed: drops frames past the age limit, and the frame that
/// just left the dense part unless it opens a new stride. Called every frame, so at most one
/// frame is thinned at a time.
fn thin(frames: &mut VecDeque<Frame>, t: Thinning, pins: &BTreeSet<u64>) {
    let newest = frames.back().map_or(0, |f| f.at_ms);
    while frames.len() > 2
        && frames
            .front()
            .is_some_and(|f| f.at_ms + t.max_age_ms < newest)
    {
        frames.pop_front();
    }
    let n = frames.len();
    if n > t.dense + 1 {
        let i = n - 1 - t.dense;
        let stride = t.stride_ms.max(1);
        if frames[i].at_ms / stride == frames[i - 1].at_ms / stride
            && !pins.contains(&frames[i].at_ms)
        {
            frames.remove(i);
        }
    }
}

/// Drops the per-destination maps from the third-newest frame unless it opens a new
/// `stride_ms` (the newest two stay whole: the next interval's metrics need them). Called
/// every frame, so every older frame has been decided once.
fn strip_flow_maps(frames: &mut VecDeque<Frame>, stride_ms: u64, pins: &BTreeSet<u64>) {
    let n = frames.len();
    if n < 4 {
        return;
    }
    let stride = stride_ms.max(1);
    let (before, this) = (frames[n - 4].at_ms / stride, frames[n - 3].at_ms / stride);
    if before == this && !pins.contains(&frames[n - 3].at_ms) {
        let snap = &mut frames[n - 3].snapshot;
        snap.dests = Default::default();
        snap.resets = Default::default();
        snap.sock_errors = Default::default();
        snap.has_flow_maps = false;
    }
}

/// The facts of a window: at its start, the latest read, and what was kept to read the next
/// ones by change.
struct FactsState {
    start: Shared<NodeFacts>,
    latest: Shared<NodeFacts>,
    cache: FactsCache,
}

impl FactsState {
    fn read(source: &FactsSource, mut cache: FactsCache) -> FactsState {
        let start = Shared::new(source.collect_changed(&mut cache, &BTreeSet::new()));
        FactsState {
            latest: start.clone(),
            start,
            cache,
        }
    }
}

/// Whether a drop reason can be netfilter's: named `NETFILTER_DROP`, or a reason that does not
/// tell (absent on this kernel, unnamed, `NOT_SPECIFIED`).
fn maybe_netfilter(reason: u32, names: &BTreeMap<u32, String>) -> bool {
    reason == tracer_common::ABSENT
        || names
            .get(&reason)
            .is_none_or(|n| n == "NETFILTER_DROP" || n == "NOT_SPECIFIED")
}

/// The namespaces whose netfilter drops (see [`maybe_netfilter`]) rose from `before` to `now`.
/// A drop whose site places it outside netfilter (`placed_elsewhere`, see
/// [`placed_outside_netfilter`]) is not one: a reason that does not tell (`NOT_SPECIFIED`) is
/// placed by its location, and `ip6_mc_input` (multicast not for this host) or `dst_discard_out`
/// (no route) are not netfilter's, so no rule's counter rose for it. Fresh namespaces drop IPv6
/// router solicitations and MLD reports there for their first minutes; without this, every
/// facts round listed their rules again.
fn netfilter_namespaces(
    before: &HashMap<DropKey, u64>,
    now: &HashMap<DropKey, u64>,
    names: &BTreeMap<u32, String>,
    mut placed_elsewhere: impl FnMut(&DropKey) -> bool,
) -> BTreeSet<u32> {
    now.iter()
        .filter(|(k, n)| **n > before.get(*k).copied().unwrap_or(0))
        .filter(|(k, _)| maybe_netfilter(k.reason, names))
        .filter(|(k, _)| !placed_elsewhere(k))
        .map(|(k, _)| k.netns)
        .collect()
}

/// What a finished window produced (the document is in `judged`).
pub type WindowResult = Judged;

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

impl Watch {
    /// Starts a window now: the first frame at 0 ms, and the facts of the scope's namespace;
    /// the facts of the rest of the node follow in the background (judging waits for them).
    pub fn begin(
        tracer: &LiveTracer,
        counters: CounterSource,
        facts: FactsSource,
        scope: Option<NetnsScope>,
    ) -> Result<Watch> {
        let mut cache = FactsCache::default();
        if let Some(s) = &scope {
            // Its rules' counters are read before the window's first frame.
            facts.prime(&mut cache, s.inode);
        }
        let source = facts.clone();
        let pending = std::thread::Builder::new()
            .name("tracer-facts".to_owned())
            .spawn(move || FactsState::read(&source, cache))
            .ok();
        let mut watch = Watch {
            counters,
            facts,
            scope,
            frames: VecDeque::new(),
            pending: Mutex::new(pending),
            state: OnceLock::new(),
            netfilter_drops: BTreeSet::new(),
            keep: None,
            thin: None,
            lean: false,
            pins: BTreeSet::new(),
            full_at: None,
            first_read: Mutex::new(FirstRead::Done),
            noise_sites: HashMap::new(),
            non_netfilter_sites: HashMap::new(),
            steps: Steps::default(),
        };
        watch.tick(tracer, 0)?;
        Ok(watch)
    }

    /// The facts, waiting for the background read when it is still going (read here when it
    /// could not be started or failed).
    fn settled(&self) -> &FactsState {
        self.state.get_or_init(|| {
            let handle = self.pending.lock().ok().and_then(|mut p| p.take());
            handle
                .and_then(|h| h.join().ok())
                .unwrap_or_else(|| FactsState::read(&self.facts, FactsCache::default()))
        })
    }

    fn settled_mut(&mut self) -> &mut FactsState {
        self.settled();
        match self.state.get_mut() {
            Some(state) => state,
            None => unreachable!("settled() has just set the facts"),
        }
    }

    /// Reads the per-destination maps (destinations, resets, socket errors) only at the start
    /// and the end of the window: a node with thousands of destinations then costs two reads
    /// of them, not one a second, and the frames in between stay small.
    pub fn lean(mut self) -> Self {
        self.lean = true;
        self
    }

    /// Keeps only the newest `frames` frames (a rolling window for the dashboard).
    pub fn rolling(mut self, frames: usize) -> Self {
        self.keep = Some(frames.max(2));
        self
    }

    /// Keeps a long rolling window: every frame of the newest `thinning.dense`, one per stride
    /// before that, none older than `thinning.max_age_ms`.
    pub fn thinned(mut self, thinning: Thinning) -> Self {
        self.thin = Some(thinning);
        self
    }

    /// Takes a frame `at_ms` milliseconds after the window began.
    pub fn tick(&mut self, tracer: &LiveTracer, at_ms: u64) -> Result<()> {
        let full = !self.lean || self.frames.is_empty();
        self.tick_with(tracer, at_ms, full)
    }

    fn tick_with(&mut self, tracer: &LiveTracer, at_ms: u64, flow_maps: bool) -> Result<()> {
        // A window's first and last frames read every namespace's counters (see `finish`).
        let full = self.frames.is_empty();
        self.tick_planned(tracer, at_ms, flow_maps, full)
    }

    /// Takes a frame; `all_counters`: read every namespace's counters, else those the kernel
    /// saw busy since the last frame, the host, the scope and the slow round's share.
    fn tick_planned(
        &mut self,
        tracer: &LiveTracer,
        at_ms: u64,
        flow_maps: bool,
        all_counters: bool,
    ) -> Result<()> {
        let snapshot = tracer.snapshot_with(flow_maps)?;
        let plan = if all_counters {
            SamplePlan::full()
        } else {
            let noise = &mut self.noise_sites;
            let mut hot = self
                .frames
                .back()
                .map(|f| {
                    snapshot.active_netns_counting(&f.snapshot, |key| {
                        !*noise
                            .entry((key.reason, key.location))
                            .or_insert_with(|| is_noise(tracer, key))
                    })
                })
                .unwrap_or_default();
            hot.extend(self.scope.as_ref().map(|s| s.inode));
            SamplePlan {
                full: false,
                hot,
                keep_hot_ms: self.rolling_ms(),
            }
        };
        let frame = Frame {
            at_ms,
            // The wall clock, so documents say when the window was (UTC) beside `at_s`.
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as u64),
            snapshot,
            counters: self.read_counters(at_ms, &plan),
            bpf_stats_enabled: bpf_stats_enabled(),
        };
        self.full_at = all_counters.then_some(at_ms).or(self.full_at);
        if let Some(before) = self.frames.back() {
            let elsewhere = &mut self.non_netfilter_sites;
            self.netfilter_drops.extend(netfilter_namespaces(
                &before.snapshot.drops,
                &frame.snapshot.drops,
                &tracer.names.drop_reasons,
                |key| {
                    *elsewhere
                        .entry((key.reason, key.location))
                        .or_insert_with(|| placed_outside_netfilter(tracer, key))
                },
            ));
        }
        self.frames.push_back(frame);
        if let Some(keep) = self.keep {
            while self.frames.len() > keep {
                self.frames.pop_front();
            }
        }
        if let Some(t) = self.thin {
            thin(&mut self.frames, t, &self.pins);
            strip_flow_maps(&mut self.frames, t.flow_maps_stride_ms, &self.pins);
        }
        // One slice, so judging a rolling window needs no copy of its frames.
        let frames = self.frames.make_contiguous();
        self.steps
            .retain(|at| frames.binary_search_by_key(&at, |f| f.at_ms).is_ok());
        Ok(())
    }

    /// A rolling window's length in ms (its judged frames, one a second); 0 for a fixed window
    /// (its ends read every namespace).
    fn rolling_ms(&self) -> u64 {
        let frames = self.keep.or(self.thin.map(|t| t.dense)).unwrap_or(0);
        frames as u64 * 1000
    }

    /// The frame's counters. The first frame's are read in the background (every namespace;
    /// the frame holds an empty sample until [`Watch::absorb_first_read`]); later frames' here,
    /// once the first frame has its counters.
    fn read_counters(&mut self, at_ms: u64, plan: &SamplePlan) -> CounterSample {
        if !self.frames.is_empty() {
            self.absorb_first_read();
            return self.counters.sample_planned(at_ms, plan);
        }
        let placeholder = self.counters.clone();
        let source = std::mem::replace(&mut self.counters, placeholder);
        let spawned = std::thread::Builder::new()
            .name("tracer-counters".to_owned())
            .spawn(move || {
                let sample = source.sample(at_ms);
                (source, sample)
            });
        match spawned {
            Ok(handle) => {
                *self.first_read_state() = FirstRead::Reading(handle);
                CounterSample {
                    at_ms,
                    ..CounterSample::default()
                }
            }
            Err(_) => self.counters.sample(at_ms),
        }
    }

    fn first_read_state(&self) -> std::sync::MutexGuard<'_, FirstRead> {
        self.first_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The first frame's counters when they are not in the frame yet (waits for the
    /// background read); None once they are.
    fn first_read_sample(&self) -> Option<CounterSample> {
        let mut state = self.first_read_state();
        if matches!(*state, FirstRead::Reading(_)) {
            let FirstRead::Reading(handle) = std::mem::replace(&mut *state, FirstRead::Done) else {
                unreachable!("matched above");
            };
            // A read that panicked is read again here, with a fresh source.
            let read = handle.join().unwrap_or_else(|_| {
                let source = self.counters.clone();
                let at_ms = self.frames.front().map_or(0, |f| f.at_ms);
                let sample = source.sample(at_ms);
                (source, sample)
            });
            *state = FirstRead::Read(Box::new(read));
        }
        match &*state {
            FirstRead::Read(read) => Some(read.1.clone()),
            FirstRead::Reading(_) | FirstRead::Done => None,
        }
    }

    /// Puts the first frame's counters into it (waiting for the background read) and takes
    /// the source back.
    fn absorb_first_read(&mut self) {
        self.first_read_sample();
        let state = std::mem::replace(&mut *self.first_read_state(), FirstRead::Done);
        if let FirstRead::Read(read) = state {
            let (source, sample) = *read;
            self.counters = source;
            if let Some(first) = self.frames.front_mut() {
                first.counters = sample;
            }
        }
    }

    /// The frames as judged: one slice, the first frame with its counters even while they
    /// are not in it yet (a copy then, and when the ring is not contiguous).
    fn frames_judged(&self) -> Cow<'_, [Frame]> {
        let first = self.first_read_sample();
        let (all, rest) = self.frames.as_slices();
        if first.is_none() && rest.is_empty() {
            return Cow::Borrowed(all);
        }
        let mut owned: Vec<Frame> = self.frames.iter().cloned().collect();
        if let (Some(sample), Some(frame)) = (first, owned.first_mut()) {
            frame.counters = sample;
        }
        Cow::Owned(owned)
    }

    /// What the probes counted between the last two frames (None before the second frame).
    pub fn last_interval(&self) -> Option<crate::kernel::snapshot::Snapshot> {
        let n = self.frames.len();
        (n >= 2).then(|| {
            self.frames[n - 1]
                .snapshot
                .since(&self.frames[n - 2].snapshot)
        })
    }

    /// What the newest frame's counters could not collect (one sentence each).
    pub fn last_errors(&self) -> &[String] {
        self.frames
            .back()
            .map_or(&[], |f| f.counters.errors.as_slice())
    }

    /// Number of frames kept.
    pub fn frames_kept(&self) -> usize {
        self.frames.len()
    }

    /// Judges the newest `window` (a shorter rolling window than the one kept), with the
    /// latest facts: from the newest frame at or before `window` ago (or the oldest kept) to the
    /// newest. With thinning, a window reaching into the thinned part starts up to one stride
    /// earlier than asked; the document's `window.duration_s` says what was judged.
    pub fn judge_window(
        &self,
        tracer: &LiveTracer,
        window: std::time::Duration,
        notes: &[String],
    ) -> Judged {
        self.judge_window_in(tracer, window, self.scope.as_ref(), notes)
    }

    /// [`Watch::judge_window`] narrowed to `scope` instead of the watch's own (a pod asked
    /// for by `tracer mcp`).
    pub fn judge_window_in(
        &self,
        tracer: &LiveTracer,
        window: std::time::Duration,
        scope: Option<&NetnsScope>,
        notes: &[String],
    ) -> Judged {
        let facts = self.settled();
        self.judge_window_with(tracer, window, scope, (&facts.start, &facts.latest), notes)
    }

    /// [`Watch::judge_window_in`] with the facts read at the window's ends by the caller (a
    /// forward window reads them when it starts and ends, so the rules' counters rise in it).
    pub fn judge_window_with(
        &self,
        tracer: &LiveTracer,
        window: std::time::Duration,
        scope: Option<&NetnsScope>,
        (facts_start, facts_end): (&Shared<NodeFacts>, &Shared<NodeFacts>),
        notes: &[String],
    ) -> Judged {
        let all = self.frames_judged();
        let newest = all.last().map_or(0, |f| f.at_ms);
        let since = newest.saturating_sub(window.as_millis() as u64);
        // The newest frame old enough that still holds the per-destination maps (else the
        // window's flows section would be empty); any old-enough frame when none does.
        let start = all
            .iter()
            .rposition(|f| f.at_ms <= since && f.snapshot.has_flow_maps)
            .or_else(|| all.iter().rposition(|f| f.at_ms <= since))
            .unwrap_or(0);
        judge_with_steps(
            &all[start..],
            &self.steps,
            &tracer.meta(),
            tracer.symbols(),
            scope,
            (facts_start, facts_end),
            notes,
        )
    }

    /// Keeps the newest frame whole until [`Watch::unpin`] (a forward window starts at it);
    /// returns its `at_ms`.
    pub fn pin_newest(&mut self) -> Option<u64> {
        let at = self.frames.back()?.at_ms;
        self.pins.insert(at);
        Some(at)
    }

    /// Lets thinning treat the frame at `at_ms` like any other again.
    pub fn unpin(&mut self, at_ms: u64) {
        self.pins.remove(&at_ms);
    }

    /// The host interfaces' `rx_crc_errors` in the newest frame (the kernel's counters), by
    /// device; interfaces without the counter are left out.
    pub fn host_rx_crc_errors(&self) -> std::collections::BTreeMap<String, u64> {
        self.frames
            .back()
            .and_then(|f| f.counters.host())
            .map(|h| {
                h.interfaces
                    .iter()
                    .filter_map(|(name, i)| {
                        i.stats.get("rx_crc_errors").map(|v| (name.clone(), *v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `at_ms` of the newest frame.
    pub fn newest_at_ms(&self) -> Option<u64> {
        self.frames.back().map(|f| f.at_ms)
    }

    /// The latest facts read (waits for the first read).
    pub fn facts(&self) -> &NodeFacts {
        &self.settled().latest
    }

    /// Reads the node's facts again (rolling windows refresh them now and then): only the
    /// namespaces whose rules or routes changed, or where the kernel saw netfilter drops.
    pub fn refresh_facts(&mut self) {
        let drops = std::mem::take(&mut self.netfilter_drops);
        let source = self.facts.clone();
        let state = self.settled_mut();
        state.latest = Shared::new(source.collect_changed(&mut state.cache, &drops));
    }

    /// How often each source of namespace `inode` was read by this window's facts.
    pub fn facts_reads(&self, inode: u32) -> crate::node::facts::Reads {
        self.settled().cache.reads(inode)
    }

    fn judge_now(&self, tracer: &LiveTracer, notes: &[String]) -> Judged {
        let frames = self.frames_judged();
        let facts = self.settled();
        judge_with_steps(
            &frames,
            &self.steps,
            &tracer.meta(),
            tracer.symbols(),
            self.scope.as_ref(),
            (&facts.start, &facts.latest),
            notes,
        )
    }

    /// Judges the frames kept so far (rolling), with the latest facts.
    pub fn judge_rolling(&self, tracer: &LiveTracer, notes: &[String]) -> Judged {
        self.judge_now(tracer, notes)
    }

    /// Ends the window at `at_ms`: last frame, facts again, verdict.
    pub fn finish(
        &mut self,
        tracer: &LiveTracer,
        at_ms: u64,
        notes: &[String],
    ) -> Result<WindowResult> {
        self.absorb_first_read();
        // The last frame must have read the per-destination maps and every namespace's
        // counters (so each namespace's deltas cover the window exactly).
        let full_at = self.full_at;
        if self.frames.back().is_some_and(|f| {
            f.at_ms >= at_ms
                && (!f.snapshot.has_flow_maps || full_at != Some(f.at_ms))
                && self.frames.len() > 1
        }) {
            // Its replacement may be taken at the same `at_ms`.
            if let Some(dropped) = self.frames.pop_back() {
                self.steps.forget(dropped.at_ms);
            }
        }
        if self.frames.back().is_none_or(|f| f.at_ms < at_ms) {
            self.tick_planned(tracer, at_ms, true, true)?;
        }
        self.refresh_facts();
        Ok(self.judge_now(tracer, notes))
    }

    /// What the probes counted between the first and the last frame, narrowed to the scope.
    pub fn delta(&self) -> crate::kernel::snapshot::Snapshot {
        let (Some(first), Some(last)) = (self.frames.front(), self.frames.back()) else {
            return crate::kernel::snapshot::Snapshot::default();
        };
        let delta = last.snapshot.since(&first.snapshot);
        match &self.scope {
            Some(s) => delta.only_netns(s.inode),
            None => delta,
        }
    }

    /// The frames, facts and names of this window as a recording.
    pub fn recording(
        &self,
        tracer: &LiveTracer,
        judged: &Judged,
        recorded_at_unix: u64,
    ) -> Recording {
        let addresses: BTreeSet<u64> = self
            .frames
            .iter()
            .flat_map(|f| f.snapshot.drops.keys().map(|k| k.location))
            .collect();
        let symbols = addresses
            .into_iter()
            .map(|a| (a, tracer.symbols().label(a)))
            .collect();
        let facts = self.settled();
        Recording {
            format: FORMAT.to_owned(),
            version: VERSION,
            recorded_at_unix,
            meta: tracer.meta(),
            scope: self.scope.clone(),
            symbols,
            facts_start: NodeFacts::clone(&facts.start),
            facts_end: NodeFacts::clone(&facts.latest),
            frames: self
                .frames_judged()
                .iter()
                .map(|f| RecFrame {
                    at_ms: f.at_ms,
                    unix_ms: f.unix_ms,
                    bpf_stats_enabled: f.bpf_stats_enabled,
                    snapshot: RecSnapshot::from(&f.snapshot),
                    counters: f.counters.clone(),
                })
                .collect(),
            live_verdict: serde_json::to_value(&judged.document).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_with_rising_netfilter_drops_are_named() {
        let names = BTreeMap::from([
            (2, "NOT_SPECIFIED".to_owned()),
            (5, "NO_SOCKET".to_owned()),
            (6, "NETFILTER_DROP".to_owned()),
        ]);
        let key = |reason, netns| DropKey {
            reason,
            netns,
            location: 0xffff_0001,
        };
        let before = HashMap::from([(key(6, 10), 4), (key(6, 11), 9), (key(5, 12), 1)]);
        let now = HashMap::from([
            (key(6, 10), 7),                     // rose: netfilter
            (key(6, 11), 9),                     // did not rise
            (key(5, 12), 30),                    // rose, but no socket is no netfilter drop
            (key(2, 13), 1),                     // new, unspecified: may be netfilter
            (key(tracer_common::ABSENT, 14), 2), // no reasons on this kernel
            (key(77, 15), 1),                    // a reason this kernel does not name
        ]);
        assert_eq!(
            netfilter_namespaces(&before, &now, &names, |_| false),
            BTreeSet::from([10, 13, 14, 15])
        );
    }

    /// An unspecified drop at a site placed outside netfilter (multicast not for this host,
    /// no route: fresh namespaces' IPv6 router solicitations and MLD reports) does not make its
    /// namespace's rules be listed again; one at any other site, or a netfilter drop, still does.
    #[test]
    fn unspecified_drops_at_noise_sites_are_not_netfilter_drops() {
        let names = BTreeMap::from([
            (2, "NOT_SPECIFIED".to_owned()),
            (6, "NETFILTER_DROP".to_owned()),
        ]);
        const MC_INPUT: u64 = 0xffff_0001;
        const NF_HOOK: u64 = 0xffff_0002;
        let key = |reason, netns, location| DropKey {
            reason,
            netns,
            location,
        };
        let now = HashMap::from([
            (key(2, 20, MC_INPUT), 5), // unspecified at a noise site: not netfilter
            (key(2, 21, NF_HOOK), 1),  // unspecified elsewhere: may be netfilter
            (key(6, 22, NF_HOOK), 3),  // netfilter's own reason
        ]);
        let elsewhere = |k: &DropKey| k.location == MC_INPUT;
        assert_eq!(
            netfilter_namespaces(&HashMap::new(), &now, &names, elsewhere),
            BTreeSet::from([21, 22])
        );
        // The sites as the tracer classifies them.
        assert!(outside_netfilter("NOT_SPECIFIED", "ip6_mc_input+0x1c4"));
        assert!(outside_netfilter("NOT_SPECIFIED", "dst_discard_out+0x14"));
        assert!(!outside_netfilter("NOT_SPECIFIED", "nf_hook_slow+0x9a"));
        assert!(!outside_netfilter(
            "NOT_SPECIFIED",
            "some_unknown_function+0x10"
        ));
        assert!(!outside_netfilter("NETFILTER_DROP", "nf_hook_slow+0x9a"));
        assert!(!outside_netfilter(
            "NO_REASON_FIELD",
            "nft_do_chain+0x46f [nf_tables]"
        ));
        // Before this change, every namespace with a rising unspecified drop was named.
        assert_eq!(
            netfilter_namespaces(&HashMap::new(), &now, &names, |_| false),
            BTreeSet::from([20, 21, 22])
        );
    }

    #[test]
    fn long_windows_keep_recent_seconds_and_one_frame_per_stride_before() {
        let t = Thinning {
            flow_maps_stride_ms: 30_000,
            dense: 61,
            stride_ms: 10_000,
            max_age_ms: 301_000,
        };
        let mut frames = VecDeque::new();
        // Twenty minutes of one frame a second.
        for s in 0..1200u64 {
            frames.push_back(Frame {
                at_ms: s * 1000,
                ..Frame::default()
            });
            thin(&mut frames, t, &BTreeSet::new());
        }
        let at: Vec<u64> = frames.iter().map(|f| f.at_ms / 1000).collect();
        let newest = 1199;
        // The newest 61 frames, every second.
        assert_eq!(
            &at[at.len() - 61..],
            &(newest - 60..=newest).collect::<Vec<_>>()[..]
        );
        // Before them one per 10 s, none older than 301 s.
        let older = &at[..at.len() - 61];
        assert!(older.windows(2).all(|w| w[1] - w[0] == 10), "{older:?}");
        assert!(older[0] + 301 >= newest, "oldest {} kept", older[0]);
        assert!(
            older[0] + 301 <= newest + 10,
            "oldest within one stride of the limit"
        );
        assert_eq!(frames.len(), 61 + older.len());
        assert!(frames.len() <= 61 + 25, "{} frames kept", frames.len());
    }

    #[test]
    fn a_pinned_frame_stays_whole_through_thinning() {
        let t = Thinning {
            flow_maps_stride_ms: 30_000,
            dense: 5,
            stride_ms: 10_000,
            max_age_ms: 301_000,
        };
        let pins = BTreeSet::from([13_000u64]);
        let mut frames = VecDeque::new();
        for s in 0..60u64 {
            frames.push_back(Frame {
                at_ms: s * 1000,
                snapshot: crate::kernel::snapshot::Snapshot {
                    has_flow_maps: true,
                    ..Default::default()
                },
                ..Frame::default()
            });
            thin(&mut frames, t, &pins);
            strip_flow_maps(&mut frames, t.flow_maps_stride_ms, &pins);
        }
        let pinned = frames.iter().find(|f| f.at_ms == 13_000);
        assert!(pinned.is_some_and(|f| f.snapshot.has_flow_maps));
        // Its unpinned neighbours went as usual.
        assert!(frames.iter().all(|f| f.at_ms != 14_000));
        assert!(frames
            .iter()
            .find(|f| f.at_ms == 10_000)
            .is_some_and(|f| !f.snapshot.has_flow_maps));
    }

    #[test]
    fn flow_maps_stay_in_the_newest_two_frames_and_one_per_stride() {
        let mut frames = VecDeque::new();
        for s in 0..200u64 {
            frames.push_back(Frame {
                at_ms: s * 1000,
                snapshot: crate::kernel::snapshot::Snapshot {
                    has_flow_maps: true,
                    ..Default::default()
                },
                ..Frame::default()
            });
            strip_flow_maps(&mut frames, 30_000, &BTreeSet::new());
        }
        let with: Vec<u64> = frames
            .iter()
            .filter(|f| f.snapshot.has_flow_maps)
            .map(|f| f.at_ms / 1000)
            .collect();
        // 0 (the first), every 30 s, and the newest two.
        assert_eq!(with, vec![0, 30, 60, 90, 120, 150, 180, 198, 199]);
    }
}

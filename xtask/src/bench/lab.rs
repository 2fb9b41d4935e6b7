//! The bench's lab: network namespaces (loopback, or a veth pair addressed from 198.18.0.0/15),
//! nftables rules inside them, the load generator runs and the counters that measure them.
//!
//! Everything lives in namespaces named `trc-bench-<pid>-…`, deleted when the [`Lab`] drops
//! (also on error); nothing touches the root namespace's firewall or routes. Every load is
//! bounded in time, and every child is killed if it outlives its deadline.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::observe::Tools;
use super::{check_interrupted, sleep};
use crate::cmd::{command, display, stdout_of};

/// The nftables table the lab creates inside its namespaces.
const NFT_TABLE: &str = "trcbench";
/// Sender and receiver addresses of the veth pair (198.18.0.0/15 is for benchmarks).
const SENDER_ADDR: &str = "198.18.0.1";
const RECEIVER_ADDR: &str = "198.18.0.2";
const PREFIX: &str = "/30";
/// A port nothing listens on, the port of the nftables drop rule, the TCP port.
const CLOSED_PORT: u16 = 9;
const NFT_DROP_PORT: u16 = 7777;
const TCP_PORT: u16 = 5201;
/// Random loss applied to the TCP stream at the receiver, in percent.
const TCP_LOSS_PERCENT: u32 = 1;
/// How often the observer is sampled while the load runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A workload of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// UDP flood to a closed port on 127.0.0.1 inside a namespace.
    UdpClosedPort,
    /// UDP flood on loopback into an nftables `counter drop` rule.
    UdpNftDrop,
    /// TCP bulk transfer over veth through 1 % random nftables loss at the receiver.
    TcpLoss,
    /// UDP flood over veth to a closed port in another namespace (NET_RX softirq load).
    NetRx,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::UdpClosedPort,
        Workload::UdpNftDrop,
        Workload::TcpLoss,
        Workload::NetRx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::UdpClosedPort => "udp-closed-port",
            Workload::UdpNftDrop => "udp-nft-drop",
            Workload::TcpLoss => "tcp-loss",
            Workload::NetRx => "net-rx",
        }
    }

    /// What the throughput counts, per second.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::UdpClosedPort | Workload::UdpNftDrop => "drops/s",
            Workload::TcpLoss => "B/s",
            Workload::NetRx => "datagrams/s",
        }
    }

    /// How the throughput is measured.
    pub fn measured_by(self) -> &'static str {
        match self {
            Workload::UdpClosedPort => "Udp NoPorts delta in the namespace / generator time",
            Workload::UdpNftDrop => "nftables rule counter delta / generator time",
            Workload::TcpLoss => "bytes read by the receiver / its time from first byte to EOF",
            Workload::NetRx => "Udp NoPorts delta in the receiving namespace / generator time",
        }
    }

    /// A UDP flood: its generator keeps every CPU busy unless something else runs.
    pub fn is_flood(self) -> bool {
        !matches!(self, Workload::TcpLoss)
    }

    fn uses_veth(self) -> bool {
        matches!(self, Workload::TcpLoss | Workload::NetRx)
    }
}

/// What one load run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// The generator's own time (the receiver's, for TCP).
    pub elapsed_s: f64,
    /// What the throughput counts: drops, datagrams or bytes.
    pub count: u64,
    /// Datagrams or bytes the generator sent.
    pub sent: u64,
    /// `sendmmsg` calls that failed (EAGAIN, ENOBUFS): the generator outran the stack.
    pub send_errors: u64,
    /// `Tcp: RetransSegs` delta in the sender's namespace (TCP only).
    pub retrans_segs: Option<u64>,
    /// User+system CPU time of the generator processes (sender and receiver for TCP). The
    /// kernel work of the load, tracing programs included, runs in their context.
    pub generator_cpu_s: f64,
    /// `generator_cpu_s` over the CPU time its threads could have had (`elapsed_s` x
    /// threads): well below 1 for a UDP flood means something else had the CPUs.
    pub generator_cpu_share: f64,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.count as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Units per second of the generator's CPU time: the throughput it would reach with the
    /// CPUs to itself, insensitive to other load on the machine.
    pub fn per_cpu_second(&self) -> Option<f64> {
        (self.generator_cpu_s > 0.0).then(|| self.count as f64 / self.generator_cpu_s)
    }
}

/// The namespaces of one workload; deleted on drop.
pub struct Lab {
    workload: Workload,
    loadgen: PathBuf,
    sender: String,
    receiver: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// Creates the namespaces, links, addresses and rules of `workload`.
    pub fn create(workload: Workload, tools: &Tools) -> Result<Lab> {
        let base = format!("trc-bench-{}", std::process::id());
        let sender = format!("{base}-a");
        let receiver = if workload.uses_veth() {
            format!("{base}-b")
        } else {
            sender.clone()
        };
        let mut lab = Lab {
            workload,
            loadgen: tools.loadgen.clone(),
            sender: sender.clone(),
            receiver: receiver.clone(),
            namespaces: Vec::new(),
        };
        lab.add_namespace(&sender)?;
        if workload.uses_veth() {
            lab.add_namespace(&receiver)?;
            ip([
                "link", "add", "name", "trcb-a", "netns", &sender, "type", "veth", "peer", "name",
                "trcb-b", "netns", &receiver,
            ])?;
            let sender_addr = format!("{SENDER_ADDR}{PREFIX}");
            let receiver_addr = format!("{RECEIVER_ADDR}{PREFIX}");
            ip(["-n", &sender, "addr", "add", &sender_addr, "dev", "trcb-a"])?;
            ip([
                "-n",
                &receiver,
                "addr",
                "add",
                &receiver_addr,
                "dev",
                "trcb-b",
            ])?;
            ip(["-n", &sender, "link", "set", "trcb-a", "up"])?;
            ip(["-n", &receiver, "link", "set", "trcb-b", "up"])?;
        }
        match workload {
            Workload::UdpNftDrop => nft_apply(
                &receiver,
                &nft_script(&format!("udp dport {NFT_DROP_PORT} counter drop")),
            )?,
            Workload::TcpLoss => nft_apply(
                &receiver,
                &nft_script(&format!(
                    "tcp dport {TCP_PORT} numgen random mod 100 < {TCP_LOSS_PERCENT} counter drop"
                )),
            )?,
            Workload::UdpClosedPort | Workload::NetRx => {}
        }
        Ok(lab)
    }

    fn add_namespace(&mut self, name: &str) -> Result<()> {
        ip(["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        ip(["-n", name, "link", "set", "lo", "up"])
    }

    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// The namespace the tracer is scoped to: where the drops happen.
    pub fn traced_netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.receiver)
    }

    /// One line for the progress output.
    pub fn describe(&self) -> String {
        match self.workload {
            Workload::UdpClosedPort => format!("{}: 127.0.0.1:{CLOSED_PORT}", self.sender),
            Workload::UdpNftDrop => format!(
                "{}: 127.0.0.1:{NFT_DROP_PORT}, nft `udp dport {NFT_DROP_PORT} counter drop`",
                self.sender
            ),
            Workload::TcpLoss => format!(
                "{} -> {} {RECEIVER_ADDR}:{TCP_PORT} over veth, {TCP_LOSS_PERCENT} % random drop",
                self.sender, self.receiver
            ),
            Workload::NetRx => format!(
                "{} -> {} {RECEIVER_ADDR}:{CLOSED_PORT} over veth",
                self.sender, self.receiver
            ),
        }
    }

    /// Runs the load for `duration`, calling `sample` about every 100 ms meanwhile.
    pub fn run_load(&self, duration: Duration, sample: &mut dyn FnMut()) -> Result<LoadResult> {
        let seconds = format!("{:.3}", duration.as_secs_f64());
        let deadline = duration + Duration::from_secs(15);
        match self.workload {
            Workload::UdpClosedPort | Workload::NetRx => {
                let dst = if self.workload == Workload::NetRx {
                    format!("{RECEIVER_ADDR}:{CLOSED_PORT}")
                } else {
                    format!("127.0.0.1:{CLOSED_PORT}")
                };
                let before = self.udp_no_ports()?;
                let flood = self.flood(&dst, &seconds, &[], deadline, sample)?;
                let after = self.udp_no_ports()?;
                Ok(LoadResult {
                    count: after.saturating_sub(before),
                    ..flood
                })
            }
            Workload::UdpNftDrop => {
                let before = self.nft_counter()?;
                let flood = self.flood(
                    &format!("127.0.0.1:{NFT_DROP_PORT}"),
                    &seconds,
                    &[],
                    deadline,
                    sample,
                )?;
                let after = self.nft_counter()?;
                Ok(LoadResult {
                    count: after.saturating_sub(before),
                    ..flood
                })
            }
            Workload::TcpLoss => self.tcp(&seconds, deadline, sample),
        }
    }

    /// A paced flood of the udp-closed-port lab: `rate` datagrams/s from one thread to the
    /// closed port for `duration`, calling `sample` about every 100 ms meanwhile. The count is
    /// the namespace's `Udp: NoPorts` delta (one `kfree_skb` NO_SOCKET drop each).
    pub fn run_paced_flood(
        &self,
        rate: u64,
        duration: Duration,
        sample: &mut dyn FnMut(),
    ) -> Result<LoadResult> {
        if self.workload != Workload::UdpClosedPort {
            bail!("a paced flood needs the udp-closed-port lab");
        }
        let seconds = format!("{:.3}", duration.as_secs_f64());
        let deadline = duration + Duration::from_secs(15);
        let rate = rate.to_string();
        let before = self.udp_no_ports()?;
        let flood = self.flood(
            &format!("127.0.0.1:{CLOSED_PORT}"),
            &seconds,
            &["--rate", &rate, "--threads", "1"],
            deadline,
            sample,
        )?;
        let after = self.udp_no_ports()?;
        Ok(LoadResult {
            count: after.saturating_sub(before),
            ..flood
        })
    }

    fn flood(
        &self,
        dst: &str,
        seconds: &str,
        extra: &[&str],
        deadline: Duration,
        sample: &mut dyn FnMut(),
    ) -> Result<LoadResult> {
        let mut args = vec!["udp-flood", "--dst", dst, "--seconds", seconds];
        args.extend_from_slice(extra);
        let mut flood = LoadProc::spawn(&self.sender, &self.loadgen, &args)?;
        wait_all(&mut [&mut flood], deadline, sample)?;
        let out = flood.result()?;
        let elapsed_s = field_f64(&out, "elapsed_s")?;
        let cpu_s = field_f64(&out, "cpu_s")?;
        let threads = field_u64(&out, "threads")?;
        Ok(LoadResult {
            elapsed_s,
            count: 0,
            sent: field_u64(&out, "packets")?,
            send_errors: field_u64(&out, "errors")?,
            retrans_segs: None,
            generator_cpu_s: cpu_s,
            generator_cpu_share: share(cpu_s, elapsed_s, threads),
        })
    }

    fn tcp(
        &self,
        seconds: &str,
        deadline: Duration,
        sample: &mut dyn FnMut(),
    ) -> Result<LoadResult> {
        let retrans_before = self.snmp(&self.sender, "Tcp", "RetransSegs")?;
        let listen = format!("{RECEIVER_ADDR}:{TCP_PORT}");
        let timeout = format!("{}", deadline.as_secs());
        let mut receiver = LoadProc::spawn(
            &self.receiver,
            &self.loadgen,
            &["tcp-recv", "--listen", &listen, "--timeout", &timeout],
        )?;
        let ready = receiver.line()?;
        if ready.trim() != "listening" {
            bail!("the TCP receiver said `{ready}` instead of `listening`");
        }
        let mut sender = LoadProc::spawn(
            &self.sender,
            &self.loadgen,
            &["tcp-send", "--dst", &listen, "--seconds", seconds],
        )?;
        wait_all(&mut [&mut sender, &mut receiver], deadline, sample)?;
        let sent = sender.result()?;
        let received = receiver.result()?;
        let retrans_after = self.snmp(&self.sender, "Tcp", "RetransSegs")?;
        let elapsed_s = field_f64(&received, "elapsed_s")?;
        let cpu_s = field_f64(&sent, "cpu_s")? + field_f64(&received, "cpu_s")?;
        Ok(LoadResult {
            elapsed_s,
            count: field_u64(&received, "bytes")?,
            sent: field_u64(&sent, "bytes")?,
            send_errors: 0,
            retrans_segs: Some(retrans_after.saturating_sub(retrans_before)),
            generator_cpu_s: cpu_s,
            generator_cpu_share: share(cpu_s, elapsed_s, 2),
        })
    }

    fn udp_no_ports(&self) -> Result<u64> {
        self.snmp(&self.receiver, "Udp", "NoPorts")
    }

    fn snmp(&self, netns: &str, protocol: &str, field: &str) -> Result<u64> {
        let text = stdout_of(&mut command(
            "ip",
            ["netns", "exec", netns, "cat", "/proc/net/snmp"],
        ))?;
        snmp_value(&text, protocol, field)
            .with_context(|| format!("no `{protocol}: {field}` in {netns}'s /proc/net/snmp"))
    }

    fn nft_counter(&self) -> Result<u64> {
        let text = stdout_of(&mut command(
            "ip",
            [
                "netns",
                "exec",
                &self.receiver,
                "nft",
                "-j",
                "list",
                "table",
                "inet",
                NFT_TABLE,
            ],
        ))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).context("parsing `nft -j list table`")?;
        counter_packets(&json).context("no counter in the nftables table")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.namespaces.iter().rev() {
            if let Err(err) = ip(["netns", "del", name]) {
                eprintln!("bench: cleaning up namespace {name}: {err:#}");
            }
        }
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip<const N: usize>(args: [&str; N]) -> Result<()> {
    stdout_of(&mut command("ip", args)).map(drop)
}

/// An nftables table with one input chain holding `rule`.
fn nft_script(rule: &str) -> String {
    format!(
        "table inet {NFT_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; \
         policy accept;\n    {rule}\n  }}\n}}\n"
    )
}

/// Loads `script` with `nft -f -` inside `netns`.
fn nft_apply(netns: &str, script: &str) -> Result<()> {
    let mut cmd = command("ip", ["netns", "exec", netns, "nft", "-f", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = display(&cmd);
    let mut child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .with_context(|| format!("writing to `{shown}`"))?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}\n{script}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A value of `/proc/net/snmp`: a header line and a value line per protocol.
pub fn snmp_value(text: &str, protocol: &str, field: &str) -> Option<u64> {
    let prefix = format!("{protocol}:");
    let mut lines = text.lines().filter(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|first| first == prefix)
    });
    let header = lines.next()?;
    let values = lines.next()?;
    let index = header.split_whitespace().position(|name| name == field)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// The packets of the first `counter` in `nft -j` output.
pub fn counter_packets(json: &serde_json::Value) -> Option<u64> {
    match json {
        serde_json::Value::Object(map) => {
            if let Some(packets) = map
                .get("counter")
                .and_then(|counter| counter.get("packets"))
                .and_then(serde_json::Value::as_u64)
            {
                return Some(packets);
            }
            map.values().find_map(counter_packets)
        }
        serde_json::Value::Array(items) => items.iter().find_map(counter_packets),
        _ => None,
    }
}

fn share(cpu_s: f64, elapsed_s: f64, threads: u64) -> f64 {
    if elapsed_s > 0.0 && threads > 0 {
        cpu_s / (elapsed_s * threads as f64)
    } else {
        0.0
    }
}

fn field_f64(json: &serde_json::Value, key: &str) -> Result<f64> {
    json.get(key)
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("no `{key}` in the load generator's output {json}"))
}

fn field_u64(json: &serde_json::Value, key: &str) -> Result<u64> {
    json.get(key)
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("no `{key}` in the load generator's output {json}"))
}

/// A load generator running in a namespace; killed on drop if still running.
struct LoadProc {
    shown: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    exited: bool,
}

impl LoadProc {
    fn spawn(netns: &str, loadgen: &std::path::Path, args: &[&str]) -> Result<LoadProc> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .arg(loadgen)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = display(&cmd);
        let mut child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("`{shown}` has no stdout"))?;
        Ok(LoadProc {
            shown,
            child,
            stdout: BufReader::new(stdout),
            exited: false,
        })
    }

    /// The next line of its stdout (blocking; the generator prints it right away).
    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .with_context(|| format!("reading from `{}`", self.shown))?;
        if line.is_empty() {
            let stderr = self.stderr();
            bail!("`{}` ended early: {stderr}", self.shown);
        }
        Ok(line)
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text.trim().to_owned()
    }

    /// Whether it has exited; fails if it exited unsuccessfully.
    fn poll(&mut self) -> Result<bool> {
        if self.exited {
            return Ok(true);
        }
        match self
            .child
            .try_wait()
            .with_context(|| format!("waiting for `{}`", self.shown))?
        {
            Some(status) => {
                self.exited = true;
                if !status.success() {
                    let stderr = self.stderr();
                    bail!("`{}` failed ({status}): {stderr}", self.shown);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Its final JSON line, once it has exited.
    fn result(&mut self) -> Result<serde_json::Value> {
        let mut text = String::new();
        self.stdout
            .read_to_string(&mut text)
            .with_context(|| format!("reading from `{}`", self.shown))?;
        let last = text
            .lines()
            .rev()
            .find(|line| line.starts_with('{'))
            .with_context(|| format!("`{}` printed no result", self.shown))?;
        serde_json::from_str(last).with_context(|| format!("parsing `{last}`"))
    }
}

impl Drop for LoadProc {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until every process has exited (killing them after `deadline`), sampling meanwhile.
fn wait_all(
    procs: &mut [&mut LoadProc],
    deadline: Duration,
    sample: &mut dyn FnMut(),
) -> Result<()> {
    let started = Instant::now();
    let mut last_sample = started;
    loop {
        let mut all = true;
        for proc in procs.iter_mut() {
            all &= proc.poll()?;
        }
        if all {
            return Ok(());
        }
        if started.elapsed() > deadline {
            bail!(
                "the load did not end within {deadline:?}: {}",
                procs
                    .iter()
                    .map(|proc| proc.shown.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        if last_sample.elapsed() >= SAMPLE_EVERY {
            sample();
            last_sample = Instant::now();
        }
        check_interrupted()?;
        sleep(Duration::from_millis(10))?;
    }
}

/// `kernel.bpf_stats_enabled` set to 1, its previous value restored on drop.
///
/// The guard also holds a `BPF_ENABLE_STATS` file descriptor: run times keep being counted
/// while it is open even if another process writes 0 to the sysctl meanwhile (the kernel
/// counts the sysctl and each such descriptor as separate references).
pub struct StatsGuard {
    previous: String,
    _stats_fd: Option<OwnedFd>,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// `BPF_ENABLE_STATS` of `enum bpf_cmd`, and `BPF_STATS_RUN_TIME`.
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

/// `bpf(BPF_ENABLE_STATS, {type: BPF_STATS_RUN_TIME})`: run-time stats while the fd is open.
fn enable_stats_fd() -> std::io::Result<OwnedFd> {
    // `union bpf_attr`'s `enable_stats { __u32 type; }`, padded with zeros.
    let attr: [u32; 4] = [BPF_STATS_RUN_TIME, 0, 0, 0];
    // SAFETY: the attribute buffer is valid for its size and only read by the kernel.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    let fd = i32::try_from(fd).unwrap_or(-1);
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl StatsGuard {
    pub fn enable() -> Result<StatsGuard> {
        let previous = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        fs::write(BPF_STATS, "1").with_context(|| format!("writing 1 to {BPF_STATS}"))?;
        let stats_fd = match enable_stats_fd() {
            Ok(fd) => Some(fd),
            Err(err) => {
                eprintln!("bench: BPF_ENABLE_STATS failed ({err}); relying on the sysctl only");
                None
            }
        };
        Ok(StatsGuard {
            previous,
            _stats_fd: stats_fd,
        })
    }

    pub fn previous(&self) -> String {
        self.previous.clone()
    }

    /// Sets the sysctl to 1 again if something else changed it; says whether it had to.
    pub fn reassert(&self) -> bool {
        let current = fs::read_to_string(BPF_STATS).unwrap_or_default();
        if current.trim() == "1" {
            return false;
        }
        if let Err(err) = fs::write(BPF_STATS, "1") {
            eprintln!("bench: writing 1 to {BPF_STATS}: {err}");
        }
        true
    }
}

impl Drop for StatsGuard {
    fn drop(&mut self) {
        if let Err(err) = fs::write(BPF_STATS, &self.previous) {
            eprintln!("bench: restoring {BPF_STATS} to {}: {err}", self.previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 10
Tcp: RtoAlgorithm RtoMin RetransSegs OutRsts
Tcp: 1 200 51506 3
Udp: InDatagrams NoPorts InErrors
Udp: 0 1341696 0
UdpLite: InDatagrams NoPorts InErrors
UdpLite: 0 7 0
";

    #[test]
    fn snmp_fields() {
        assert_eq!(snmp_value(SNMP, "Udp", "NoPorts"), Some(1_341_696));
        assert_eq!(snmp_value(SNMP, "UdpLite", "NoPorts"), Some(7));
        assert_eq!(snmp_value(SNMP, "Tcp", "RetransSegs"), Some(51_506));
        assert_eq!(snmp_value(SNMP, "Udp", "Missing"), None);
        assert_eq!(snmp_value(SNMP, "Icmp", "InMsgs"), None);
    }

    #[test]
    fn nft_counter_from_json() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "inet", "table": "trcbench", "name": "input"}},
            {"rule": {"expr": [{"match": {"op": "==", "right": 7777}},
            {"counter": {"packets": 1040, "bytes": 52858824}}, {"drop": null}]}}]}"#,
        )
        .expect("json");
        assert_eq!(counter_packets(&json), Some(1040));
        assert_eq!(counter_packets(&serde_json::json!({"nftables": []})), None);
    }

    #[test]
    fn nft_script_shape() {
        let script = nft_script("udp dport 7777 counter drop");
        assert!(script.starts_with("table inet trcbench {"));
        assert!(script.contains("type filter hook input priority 0; policy accept;"));
        assert!(script.contains("    udp dport 7777 counter drop\n"));
    }

    #[test]
    fn throughput() {
        let load = LoadResult {
            elapsed_s: 2.0,
            count: 900,
            sent: 1000,
            send_errors: 0,
            retrans_segs: None,
            generator_cpu_s: 1.5,
            generator_cpu_share: share(1.5, 2.0, 1),
        };
        assert!((load.per_second() - 450.0).abs() < 1e-9);
        assert_eq!(load.per_cpu_second(), Some(600.0));
        assert!((load.generator_cpu_share - 0.75).abs() < 1e-9);
        let idle = LoadResult {
            elapsed_s: 0.0,
            ..load
        };
        assert_eq!(idle.per_second(), 0.0);
    }
}

//! Evidence beyond the probes, as plain data: the node's counters at one instant (every network
//! namespace's SNMP/netstat/conntrack/interface counters, softnet, softirqs, interrupts) and the
//! node's facts (routes, firewall rules, policy engines, sysctls, IRQ steering).
//! Types only: `counters` and `facts` fill them; `verdict` reads them. Serde both ways, so a
//! recording can be replayed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{node::counterset::CounterSet, node::pods::PodIndex, node::shared::Shared};

/// Counters of one network namespace at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetnsCounters {
    /// Inode of the namespace (0 when unknown).
    pub inode: u32,
    /// For people: `host`, `netns NAME`, `pid PID (COMM)`.
    pub label: String,
    pub is_host: bool,
    /// `/proc/net/snmp` and `/proc/net/netstat` by group then name:
    /// `snmp["Tcp"]["RetransSegs"]`, `snmp["TcpExt"]["ListenOverflows"]`, `snmp["IpExt"]…`.
    /// Signed because a few are (`Tcp MaxConn` is -1).
    pub snmp: BTreeMap<String, CounterSet<i64>>,
    /// Conntrack of this namespace, when the module is loaded.
    pub conntrack: Option<Conntrack>,
    /// Interfaces of this namespace by name.
    pub interfaces: BTreeMap<String, IfaceCounters>,
}

impl NetnsCounters {
    /// `snmp[group][name]`, 0 when absent.
    pub fn get(&self, group: &str, name: &str) -> i64 {
        self.snmp
            .get(group)
            .and_then(|g| g.get(name))
            .copied()
            .unwrap_or(0)
    }
}

/// Linux conntrack of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conntrack {
    /// `net.netfilter.nf_conntrack_count`
    pub count: u64,
    /// `net.netfilter.nf_conntrack_max`
    pub max: u64,
    /// `/proc/net/stat/nf_conntrack` columns summed over CPUs (`drop`, `early_drop`,
    /// `insert_failed`, `invalid`, …), named from the file's header.
    pub stats: CounterSet<u64>,
}

/// Counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IfaceCounters {
    /// The kernel's standard statistics by their sysfs names (`rx_errors`, `rx_dropped`,
    /// `rx_crc_errors`, `rx_missed_errors`, `rx_fifo_errors`, `tx_errors`, `tx_dropped`, …).
    /// From `/sys/class/net/IF/statistics/` where readable, else the `/proc/net/dev` columns
    /// mapped to the same names.
    pub stats: CounterSet<u64>,
    /// Driver name and version (`ethtool -i`), when known.
    pub driver: Option<String>,
    pub driver_version: Option<String>,
    /// Driver-private statistics (`ethtool -S`), e.g. ENA `pps_allowance_exceeded`.
    pub ethtool: CounterSet<u64>,
    /// Qdisc drops/overlimits of the root qdisc, when read.
    pub qdisc: Option<QdiscCounters>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QdiscCounters {
    pub kind: String,
    pub drops: u64,
    pub overlimits: u64,
    pub requeues: u64,
    pub backlog_packets: u64,
}

/// One row of `/proc/net/softnet_stat` (parsed by column count).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SoftnetRow {
    pub cpu: u32,
    pub processed: u64,
    pub dropped: u64,
    pub time_squeeze: u64,
    pub received_rps: u64,
    pub flow_limit_count: u64,
    /// Backlog length (5.10+).
    pub backlog_len: Option<u64>,
}

/// One line of `/proc/interrupts` that has per-CPU counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IrqLine {
    /// IRQ number or name (`24`, `NMI`).
    pub irq: String,
    /// The rest of the line after the counts (chip, hwirq, device names: `eth0-Tx-Rx-0`).
    pub name: String,
    pub per_cpu: Vec<u64>,
}

/// Every counter of the node at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterSample {
    /// Milliseconds since the window started (passed in by the caller, never read from a clock
    /// inside the collectors).
    pub at_ms: u64,
    /// Each namespace's reading, shared with the samples before it while the namespace is not
    /// read again or reads the same (see [`Shared::same`]).
    pub netns: Vec<Shared<NetnsCounters>>,
    pub softnet: Vec<SoftnetRow>,
    /// `/proc/softirqs` rows by vector name (`NET_RX`, `NET_TX`, …), per CPU.
    pub softirqs: BTreeMap<String, Vec<u64>>,
    pub interrupts: Vec<IrqLine>,
    /// What could not be read, and why (nothing hidden).
    pub errors: Vec<String>,
}

impl CounterSample {
    /// The counters of the namespace with this inode.
    pub fn netns(&self, inode: u32) -> Option<&NetnsCounters> {
        self.netns.iter().find(|n| n.inode == inode).map(|n| &**n)
    }

    /// Each namespace of `self` with its reading in `earlier` (None: not in `earlier`), in
    /// `self`'s order. Namespaces are usually in the same order in consecutive samples, so
    /// each is first looked for at its own position.
    pub fn paired_with<'a>(
        &'a self,
        earlier: &'a CounterSample,
    ) -> impl Iterator<Item = (Option<&'a Shared<NetnsCounters>>, &'a Shared<NetnsCounters>)> + 'a
    {
        self.netns.iter().enumerate().map(move |(i, now)| {
            let before = match earlier.netns.get(i) {
                Some(b) if b.inode == now.inode => Some(b),
                _ => earlier.netns.iter().find(|b| b.inode == now.inode),
            };
            (before, now)
        })
    }

    /// The host namespace's counters.
    pub fn host(&self) -> Option<&NetnsCounters> {
        self.netns.iter().find(|n| n.is_host).map(|n| &**n)
    }

    /// Narrowed to one namespace: its counters, plus the host's interfaces (the NIC is shared),
    /// without the host's protocol counters when the namespace is not the host.
    pub fn scoped(mut self, inode: u32) -> Self {
        self.netns.retain(|n| n.inode == inode || n.is_host);
        for n in &mut self.netns {
            if n.is_host && n.inode != inode {
                n.snmp.clear();
                n.conntrack = None;
            }
        }
        self
    }
}

impl NodeFacts {
    /// Narrowed to one namespace's routes and rules (node-wide facts kept).
    pub fn scoped(mut self, inode: u32) -> Self {
        self.routes.retain(|r| r.netns == inode);
        self.firewall_rules.retain(|r| r.netns == inode);
        self
    }
}

/// A route of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteFact {
    pub netns: u32,
    pub netns_label: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// `default` or `ADDR/LEN`.
    pub dst: String,
    /// `unicast`, `local`, `broadcast`, `blackhole`, `unreachable`, `prohibit`, `throw`, …
    pub kind: String,
    pub table: u32,
    pub dev: Option<String>,
    pub gateway: Option<String>,
}

/// A firewall rule whose verdict drops or rejects packets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirewallRule {
    pub netns: u32,
    pub netns_label: String,
    /// `nftables` or `iptables-legacy`.
    pub source: String,
    /// `inet filter`, `filter`, …
    pub table: String,
    pub chain: String,
    /// Netfilter hook of the chain (`input`, `forward`, `output`, …) when known.
    pub hook: Option<String>,
    /// The rule as the tool prints it.
    pub rule: String,
    /// `drop` or `reject` (a chain policy of drop is reported as a rule `policy drop`).
    pub verdict: String,
    /// Packets the rule has matched, when it has a counter.
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

/// RPS or XPS mask of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueMask {
    pub dev: String,
    pub queue: String,
    /// `rps` or `xps`.
    pub kind: String,
    pub mask: String,
}

/// Facts about the node, read once per window (and on demand).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    pub routes: Vec<RouteFact>,
    pub firewall_rules: Vec<FirewallRule>,
    /// NetworkPolicy / CNI engines seen running: `calico`, `cilium`,
    /// `aws-network-policy-agent`, `kube-proxy`, `aws-node`.
    pub policy_engines: Vec<String>,
    /// The sysctls the runbook names (`net.ipv4.tcp_rmem`, `net.core.somaxconn`, …) of the host.
    pub sysctls: BTreeMap<String, String>,
    pub irqbalance_running: bool,
    pub queue_masks: Vec<QueueMask>,
    /// Pods with running processes and their network namespaces, from the node's files
    /// (absent in recordings made before pods were read).
    #[serde(default, skip_serializing_if = "PodIndex::is_empty")]
    pub pods: PodIndex,
    /// The `ip netns` names of the node's namespaces (`/run/netns/NAME`) by inode, read on the
    /// live node only (absent in recordings made before names were read).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub netns_names: BTreeMap<u32, String>,
    /// What could not be read, and why.
    pub errors: Vec<String>,
}

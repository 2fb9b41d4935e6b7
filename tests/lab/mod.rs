//! Test lab: network namespaces the test creates (and deletes on drop), veth links with
//! addresses from 198.18.0.0/15, nftables inside a namespace, and traffic sent from a thread
//! that entered the namespace. Never touches the root namespace's firewall or routes.
#![allow(dead_code)]

use std::{
    collections::VecDeque,
    fs::File,
    io::{Read as _, Write as _},
    net::{SocketAddr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _},
    path::PathBuf,
    process::{Command, Output},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use nix::sched::{setns, CloneFlags};

pub mod crowd;
pub mod document;
pub mod prometheus;
pub mod window;

/// Returns false (after saying why) when the privileged tests cannot run here.
pub fn privileged(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped {test}: needs root (loads eBPF programs, creates network namespaces)");
        return false;
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
            eprintln!("skipped {test}: `{tool}` is not installed (cargo xtask setup installs it)");
            return false;
        }
    }
    true
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists for the life of this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `trc-<tag>-<pid>-<n>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "trc-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n NAME ARGS…`
    pub fn ip(&self, args: &[&str]) -> Output {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs a program inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args))
    }

    /// Loads an nftables ruleset into this namespace.
    pub fn nft(&self, ruleset: &str) {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning nft");
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(ruleset.as_bytes())
            .expect("writing the ruleset");
        let out = child.wait_with_output().expect("waiting for nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Packets counted by a named nftables counter.
    pub fn nft_counter_packets(&self, family: &str, table: &str, counter: &str) -> u64 {
        let out = self.exec("nft", &["-j", "list", "counter", family, table, counter]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
        doc["nftables"]
            .as_array()
            .and_then(|items| items.iter().find_map(|i| i["counter"]["packets"].as_u64()))
            .expect("counter packets in nft output")
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result.
    pub fn run_in<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.spawn_in(f).join().expect("namespace thread panicked")
    }

    /// Starts `f` on a thread inside this namespace.
    pub fn spawn_in<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<R> {
        spawn_in_path(&self.path(), f)
    }

    /// A `/proc/net/snmp` or `/proc/net/netstat` counter of this namespace.
    pub fn net_counter(&self, file: &'static str, group: &'static str, name: &'static str) -> u64 {
        self.run_in(move || read_net_counter(file, group, name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Starts `f` on a thread inside the namespace at `path`.
pub fn spawn_in_path<R: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> R + Send + 'static,
) -> std::thread::JoinHandle<R> {
    let file = File::open(path).expect("opening the namespace");
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
        f()
    })
}

/// Reads `group:name` from `/proc/thread-self/net/<file>` (the calling thread's namespace).
pub fn read_net_counter(file: &str, group: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
        .expect("reading the namespace's counters");
    let prefix = format!("{group}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    for pair in lines.chunks(2) {
        let [header, values] = pair else { continue };
        let idx = header.split_whitespace().position(|h| h == name);
        if let Some(i) = idx {
            return values
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
                .expect("counter value");
        }
    }
    panic!("{group}:{name} not in /proc/net/{file}");
}

/// Two namespaces joined by a veth pair: `a` 198.18.<net>.1/30, `b` 198.18.<net>.2/30.
pub struct Link {
    pub a: Netns,
    pub b: Netns,
    pub addr_a: String,
    pub addr_b: String,
}

impl Link {
    pub fn new(tag: &str, net: u8) -> Link {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        // Interface names live inside each namespace, so fixed names cannot collide.
        let (va, vb) = ("veth-a", "veth-b");
        a.ip(&[
            "link", "add", va, "type", "veth", "peer", "name", vb, "netns", &b.name,
        ]);
        let addr_a = format!("198.18.{net}.1");
        let addr_b = format!("198.18.{net}.2");
        a.ip(&["addr", "add", &format!("{addr_a}/30"), "dev", va]);
        b.ip(&["addr", "add", &format!("{addr_b}/30"), "dev", vb]);
        a.ip(&["link", "set", va, "up"]);
        b.ip(&["link", "set", vb, "up"]);
        Link {
            a,
            b,
            addr_a,
            addr_b,
        }
    }
}

/// Sends `count` one-byte UDP datagrams to `to` from inside `ns`.
pub fn send_udp(ns: &Netns, to: SocketAddr, count: u32) {
    ns.run_in(move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("binding a UDP socket");
        for _ in 0..count {
            // ICMP errors from earlier datagrams may surface as send errors: ignore them.
            let _ = sock.send_to(b"x", to);
        }
    });
}

/// Sends UDP datagrams to `to` from inside `ns` until `duration` has passed.
pub fn flood_udp(ns: &Netns, to: SocketAddr, duration: Duration, cpu: Option<usize>) -> u64 {
    ns.run_in(move || {
        if let Some(cpu) = cpu {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).expect("cpu index");
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .expect("pinning the load thread");
        }
        let sock = UdpSocket::bind("0.0.0.0:0").expect("binding a UDP socket");
        let payload = [0u8; 64];
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < duration {
            for _ in 0..256 {
                if sock.send_to(&payload, to).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
}

/// A veth link between two namespaces, each end with an address (`198.18.x.y/30`).
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Three namespaces in a line: client — router — server. The router forwards (it stands for
/// the node); client 198.18.<n>.1 ↔ router .2 on one /30, router 198.18.<n+1>.1 ↔ server .2.
pub struct Routed {
    pub client: Netns,
    pub router: Netns,
    pub server: Netns,
    pub client_addr: String,
    pub server_addr: String,
    /// IPv6 addresses, empty unless made with [`Routed::dual_stack`].
    pub client_addr6: String,
    pub server_addr6: String,
}

impl Routed {
    pub fn new(tag: &str, net: u8) -> Routed {
        let client = Netns::new(&format!("{tag}c"));
        let router = Netns::new(&format!("{tag}r"));
        let server = Netns::new(&format!("{tag}s"));
        let (n1, n2) = (net, net + 1);
        veth(
            &client,
            "veth-c",
            &format!("198.18.{n1}.1/30"),
            &router,
            "veth-rc",
            &format!("198.18.{n1}.2/30"),
        );
        veth(
            &router,
            "veth-rs",
            &format!("198.18.{n2}.1/30"),
            &server,
            "veth-s",
            &format!("198.18.{n2}.2/30"),
        );
        client.ip(&["route", "add", "default", "via", &format!("198.18.{n1}.2")]);
        server.ip(&["route", "add", "default", "via", &format!("198.18.{n2}.1")]);
        // Forwarding on, inside the router namespace only.
        router.run_in(|| {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .expect("ip_forward in the router namespace");
        });
        Routed {
            client,
            router,
            server,
            client_addr: format!("198.18.{n1}.1"),
            server_addr: format!("198.18.{n2}.2"),
            client_addr6: String::new(),
            server_addr6: String::new(),
        }
    }

    /// The same line with IPv6 as well, from the benchmarking prefix 2001:2::/48 (RFC 5180, the
    /// IPv6 twin of 198.18.0.0/15): client 2001:2:0:<n>::1 ↔ router ::2, router 2001:2:0:<n+1>::1
    /// ↔ server ::2, no duplicate address detection, IPv6 forwarding on in the router.
    pub fn dual_stack(tag: &str, net: u8) -> Routed {
        let mut lab = Routed::new(tag, net);
        let (n1, n2) = (net, net + 1);
        let addr = |ns: &Netns, dev: &str, a: String| {
            ns.ip(&["-6", "addr", "add", &a, "dev", dev, "nodad"]);
        };
        addr(&lab.client, "veth-c", format!("2001:2:0:{n1}::1/64"));
        addr(&lab.router, "veth-rc", format!("2001:2:0:{n1}::2/64"));
        addr(&lab.router, "veth-rs", format!("2001:2:0:{n2}::1/64"));
        addr(&lab.server, "veth-s", format!("2001:2:0:{n2}::2/64"));
        lab.client.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("2001:2:0:{n1}::2"),
        ]);
        lab.server.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("2001:2:0:{n2}::1"),
        ]);
        lab.router.run_in(|| {
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
                .expect("IPv6 forwarding in the router namespace");
        });
        lab.client_addr6 = format!("2001:2:0:{n1}::1");
        lab.server_addr6 = format!("2001:2:0:{n2}::2");
        lab
    }
}

/// Sends UDP datagrams of `size` bytes to `to` from the namespace at `ns` for `duration`, at
/// most `rate` per second; `dont_fragment` sets DF on every datagram and ignores the learned
/// path MTU (IP_PMTUDISC_PROBE), so each oversized one reaches the router.
pub fn udp_stream(
    ns: &std::path::Path,
    to: SocketAddr,
    duration: Duration,
    rate: u32,
    size: usize,
    dont_fragment: bool,
) -> std::thread::JoinHandle<u64> {
    spawn_in_path(ns, move || {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let sock = UdpSocket::bind(any).expect("binding a UDP socket");
        if dont_fragment {
            let v: libc::c_int = libc::IP_PMTUDISC_PROBE;
            // SAFETY: valid fd and option pointer/length.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "IP_MTU_DISCOVER");
        }
        let payload = vec![0x42u8; size];
        let started = Instant::now();
        let (mut sent, mut due) = (0u64, 0u64);
        let interval = Duration::from_secs(1) / rate.max(1);
        // Paced by the clock, not by the sleeps: a sleep that overshoots on a loaded machine is
        // made up by the next sends, so the rate holds (a late wake-up sends what is due).
        while started.elapsed() < duration {
            let target = (started.elapsed().as_secs_f64() * f64::from(rate.max(1))) as u64 + 1;
            while due < target {
                due += 1;
                if sock.send_to(&payload, to).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(interval);
        }
        sent
    })
}

/// Two TUN devices in two namespaces (`a` 198.18.30.1, `b` 198.18.30.2), bridged by a
/// user-space "wire" that can lose packets (a→b only) and hold every packet for a fixed delay
/// in each direction: loss and latency the node's kernel cannot see.
pub struct TunWire {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u64, u64)>>,
}

fn open_tun(ns: &Netns, name: &'static str) -> File {
    ns.run_in(move || {
        let path = c"/dev/net/tun";
        // SAFETY: open/ioctl with a valid path and a properly sized ifreq.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            assert!(fd >= 0, "open /dev/net/tun");
            let mut ifr = [0u8; 40];
            ifr[..name.len()].copy_from_slice(name.as_bytes());
            let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as i16;
            ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
            let rc = libc::ioctl(fd, libc::TUNSETIFF, ifr.as_mut_ptr());
            assert_eq!(rc, 0, "TUNSETIFF");
            File::from_raw_fd(fd)
        }
    })
}

/// Moves packets `from` → `to` until `stop`: drops `loss` % of them (xorshift from `seed`),
/// releases each `delay` after it was read, in order. Returns (passed, lost).
fn pump(
    mut from: File,
    mut to: File,
    loss: u32,
    delay: Duration,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut rng = seed;
        let (mut passed, mut lost) = (0u64, 0u64);
        let mut buf = vec![0u8; 65536];
        let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        while !stop.load(Ordering::Relaxed) {
            // Sleep until the next packet is due (µs precision: ppoll), or 100 ms.
            let wait = held.front().map_or(Duration::from_millis(100), |(due, _)| {
                due.saturating_duration_since(Instant::now())
            });
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
            };
            let mut pfd = libc::pollfd {
                fd: from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd and timespec.
            let ready = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
            if ready > 0 {
                let Ok(n) = from.read(&mut buf) else { break };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if (rng % 100) < u64::from(loss) {
                    lost += 1;
                } else if delay.is_zero() {
                    if to.write_all(&buf[..n]).is_ok() {
                        passed += 1;
                    }
                } else {
                    held.push_back((Instant::now() + delay, buf[..n].to_vec()));
                }
            }
            let now = Instant::now();
            while held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, packet)) = held.pop_front() {
                    if to.write_all(&packet).is_ok() {
                        passed += 1;
                    }
                }
            }
        }
        (passed, lost)
    })
}

impl TunWire {
    /// `loss_percent` of the packets from `a` to `b` are lost; every packet, both ways, is
    /// held for `delay` (so the round trip gains `2 × delay`).
    pub fn new(a: &Netns, b: &Netns, loss_percent: u32, delay: Duration) -> TunWire {
        let tun_a = open_tun(a, "tun-a");
        let tun_b = open_tun(b, "tun-b");
        a.ip(&[
            "addr",
            "add",
            "198.18.30.1/32",
            "peer",
            "198.18.30.2",
            "dev",
            "tun-a",
        ]);
        b.ip(&[
            "addr",
            "add",
            "198.18.30.2/32",
            "peer",
            "198.18.30.1",
            "dev",
            "tun-b",
        ]);
        // A queue long enough to ride out the pump threads being descheduled on a busy machine:
        // with the default 500, a stall of a few ms overflows the tun's ring (FULL_RING drops),
        // which the tracer rightly reports as a NIC-layer loss — not the wire's upstream loss.
        for (ns, dev) in [(a, "tun-a"), (b, "tun-b")] {
            ns.ip(&["link", "set", dev, "txqueuelen", "10000", "up"]);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            pump(
                tun_a.try_clone().expect("tun fd"),
                tun_b.try_clone().expect("tun fd"),
                loss_percent,
                delay,
                stop.clone(),
                0x9e37_79b9_7f4a_7c15,
            ),
            pump(tun_b, tun_a, 0, delay, stop.clone(), 0x2545_f491_4f6c_dd1d),
        ];
        TunWire { stop, threads }
    }

    /// Stops the wire; returns (packets passed, packets lost).
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

/// An nftables table `inet trc` in `ns` whose input chain drops UDP to port 7777 and counts
/// each drop in the named counter `dropped`.
pub fn drop_udp_7777(ns: &Netns) {
    ns.nft(
        "table inet trc {\n\
           counter dropped {}\n\
           chain input {\n\
             type filter hook input priority 0; policy accept;\n\
             udp dport 7777 counter name \"dropped\" drop\n\
           }\n\
         }\n",
    );
}

/// Drops of `reason` a report counted at a location whose function starts with `function`.
pub fn drops_at(report: &tracer::judge::report::Report, reason: &str, function: &str) -> u64 {
    report
        .drops
        .by_reason
        .iter()
        .filter(|r| r.reason == reason)
        .flat_map(|r| &r.locations)
        .filter(|l| l.location.starts_with(function))
        .map(|l| l.count)
        .sum()
}

/// The BPF programs and links a process holds, from its descriptors' fdinfo (`prog_id:` of a
/// program descriptor, `link_id:` of a link's): exactly its own, whatever else runs.
pub fn bpf_held_by(
    pid: i32,
) -> (
    std::collections::BTreeSet<u64>,
    std::collections::BTreeSet<u64>,
) {
    let mut progs = std::collections::BTreeSet::new();
    let mut links = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (progs, links);
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        match (field("link_id:"), field("prog_id:")) {
            (Some(link), _) => {
                links.insert(link);
            }
            (None, Some(prog)) => {
                progs.insert(prog);
            }
            _ => {}
        }
    }
    (progs, links)
}

/// Ids of every loaded BPF program and link, from bpftool (empty when it is missing).
pub fn bpf_loaded() -> (
    std::collections::BTreeSet<u64>,
    std::collections::BTreeSet<u64>,
) {
    let ids = |kind: &str| -> std::collections::BTreeSet<u64> {
        Command::new("bpftool")
            .args([kind, "show", "-j"])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
            })
            .unwrap_or_default()
    };
    (ids("prog"), ids("link"))
}

/// Which of `progs` and `links` are still loaded, polled until none is or `deadline` passes.
/// Links go as the last descriptor closes; a program's id stays visible until the kernel's
/// deferred free after an RCU grace period (tens of ms on a loaded machine), so one look right
/// after the process exits can see ids that are already on their way out.
pub fn bpf_left_by(
    progs: &std::collections::BTreeSet<u64>,
    links: &std::collections::BTreeSet<u64>,
    deadline: std::time::Instant,
) -> (Vec<u64>, Vec<u64>) {
    loop {
        let (loaded, linked) = bpf_loaded();
        let lp: Vec<u64> = loaded.intersection(progs).copied().collect();
        let ll: Vec<u64> = linked.intersection(links).copied().collect();
        if (lp.is_empty() && ll.is_empty()) || std::time::Instant::now() > deadline {
            return (lp, ll);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `tracer serve --listen ADDR ARGS…` with `envs`, and returns once it says it is
/// ready (at most 30 s), with the address it serves.
pub fn spawn_serve(
    args: &[&str],
    envs: &[(&str, &std::path::Path)],
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracer"));
    command
        .args(["serve", "--listen", &listen])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("starting tracer serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.expect("utf-8");
        assert!(!line.contains("could not"), "serve: {line}");
        if line.contains("ready:") {
            break;
        }
        assert!(Instant::now() < deadline, "serve was not ready within 30 s");
    }
    std::thread::spawn(move || lines.for_each(drop));
    (child, listen)
}

/// Programs and links held open by any live process (fdinfo of every PID): a program that is
/// loaded but held by nobody was left behind (pinned or leaked).
pub fn bpf_held_by_anyone() -> (
    std::collections::BTreeSet<u64>,
    std::collections::BTreeSet<u64>,
) {
    let mut progs = std::collections::BTreeSet::new();
    let mut links = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            let (p, l) = bpf_held_by(pid);
            progs.extend(p);
            links.extend(l);
        }
    }
    (progs, links)
}

/// Sends up to `bytes` over TCP from `link.a` to `link.b` port 5201 (until `deadline`), waits
/// for the peer to close so every retransmission of the flow has happened; returns the bytes
/// received.
pub fn tcp_transfer(link: &Link, bytes: usize, deadline: Duration) -> usize {
    tcp_transfer_to(link, 5201, bytes, deadline)
}

/// [`tcp_transfer`] to another port of the receiver (several transfers at once).
pub fn tcp_transfer_to(link: &Link, port: u16, bytes: usize, deadline: Duration) -> usize {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
    };
    let listen_addr: SocketAddr = format!("{}:{port}", link.addr_b).parse().expect("addr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = link.b.spawn_in(move || {
        let listener = TcpListener::bind(listen_addr).expect("listen");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener up");
    link.a.run_in(move || {
        let mut conn =
            TcpStream::connect_timeout(&listen_addr, Duration::from_secs(10)).expect("connect");
        conn.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let chunk = vec![0x5au8; 64 * 1024];
        let started = Instant::now();
        let mut sent = 0;
        while sent < bytes && started.elapsed() < deadline {
            match conn.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Write);
        // Wait for the peer to close so every retransmission of this flow has happened.
        let mut rest = [0u8; 16];
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = conn.read(&mut rest);
    });
    receiver.join().expect("receiver")
}

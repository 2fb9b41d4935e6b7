//! `loadgen`: the load generator of `cargo xtask bench`.
//!
//! Every mode is bounded in time and prints one JSON line on stdout when it is done:
//! - `udp-flood --dst IP:PORT --seconds S [--threads T] [--sockets K] [--batch B] [--rate N]`:
//!   floods UDP datagrams with `sendmmsg` from `T` threads, each cycling over `K` non-blocking
//!   unconnected sockets; unpaced unless `--rate` asks for `N` datagrams/s in all, then every
//!   thread sends its share in bursts every 10 ms and sleeps in between
//!   (`{"mode","elapsed_s","packets","errors","cpu_s","threads"}`, and `"rate"` when paced);
//! - `tcp-send --dst IP:PORT --seconds S`: one TCP connection writing 128 KiB buffers
//!   (`{"mode","elapsed_s","bytes","cpu_s"}`);
//! - `tcp-recv --listen IP:PORT --timeout S`: accepts one connection and reads it to its end,
//!   printing `listening` first (`{"mode","elapsed_s","bytes","cpu_s"}`, elapsed from the
//!   first byte).
//!
//! `cpu_s` is the process's user+system CPU time (`getrusage`): against `elapsed_s` it shows
//! whether the generator had the CPUs to itself.
//!
//! It is meant to run inside a network namespace (`ip netns exec NAME loadgen …`).

use std::io::{self, Read as _, Write as _};
use std::mem;
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

/// Load generator for `cargo xtask bench` (every mode is bounded in time).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Flood UDP datagrams to an IPv4 address (a closed port or a drop rule).
    UdpFlood {
        /// Destination, e.g. 127.0.0.1:9.
        #[arg(long)]
        dst: SocketAddrV4,
        /// How long to send, in seconds.
        #[arg(long)]
        seconds: f64,
        /// Sending threads (default: one per CPU).
        #[arg(long)]
        threads: Option<usize>,
        /// Non-blocking sockets per thread, used in turn.
        #[arg(long, default_value_t = 4)]
        sockets: usize,
        /// Datagrams per `sendmmsg` call.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// UDP payload size in bytes.
        #[arg(long, default_value_t = 16)]
        payload: usize,
        /// Datagrams per second in all threads together (default: as fast as possible).
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Send a TCP bulk stream for a while, then close it.
    TcpSend {
        /// Destination, e.g. 198.18.0.2:5201.
        #[arg(long)]
        dst: SocketAddr,
        /// How long to send, in seconds.
        #[arg(long)]
        seconds: f64,
    },
    /// Accept one TCP connection and read it to its end.
    TcpRecv {
        /// Address to listen on, e.g. 198.18.0.2:5201.
        #[arg(long)]
        listen: SocketAddr,
        /// Give up after this many seconds in all.
        #[arg(long)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::UdpFlood {
            dst,
            seconds,
            threads,
            sockets,
            batch,
            payload,
            rate,
        } => udp_flood(&Flood {
            dst,
            duration: seconds_to_duration(seconds),
            threads: threads.unwrap_or_else(cpus).max(1),
            sockets: sockets.max(1),
            batch: batch.clamp(1, 1024),
            payload: payload.min(1400),
            rate,
        }),
        Mode::TcpSend { dst, seconds } => tcp_send(dst, seconds_to_duration(seconds)),
        Mode::TcpRecv { listen, timeout } => tcp_recv(listen, seconds_to_duration(timeout)),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn seconds_to_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.clamp(0.0, 3600.0)).unwrap_or(Duration::ZERO)
}

fn cpus() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// Parameters of a UDP flood.
struct Flood {
    dst: SocketAddrV4,
    duration: Duration,
    threads: usize,
    sockets: usize,
    batch: usize,
    payload: usize,
    /// Datagrams per second in all; `None` floods as fast as possible.
    rate: Option<u64>,
}

/// How often a paced thread sends its burst.
const PACE_TICK: Duration = Duration::from_millis(10);

/// Datagrams per second of thread `index` of `threads` for a total `rate`.
fn thread_rate(rate: u64, threads: usize, index: usize) -> u64 {
    let threads = threads.max(1) as u64;
    let index = index as u64;
    rate / threads + u64::from(index < rate % threads)
}

/// Datagrams a thread pacing at `rate`/s should have sent by the burst of tick `tick` (one tick
/// every [`PACE_TICK`], the first at the start): its share of ticks 0..=tick.
fn due_by_tick(rate: u64, tick: u64) -> u64 {
    let ticks_per_s = (Duration::from_secs(1).as_nanos() / PACE_TICK.as_nanos()).max(1);
    let due = u128::from(rate) * (u128::from(tick) + 1) / ticks_per_s;
    u64::try_from(due).unwrap_or(u64::MAX)
}

/// What one flooding thread did.
#[derive(Default)]
struct FloodCount {
    packets: u64,
    errors: u64,
}

fn udp_flood(flood: &Flood) -> Result<String> {
    let started = Instant::now();
    let deadline = started + flood.duration;
    let counts = thread::scope(|scope| {
        let handles: Vec<_> = (0..flood.threads)
            .map(|index| {
                let rate = flood
                    .rate
                    .map(|rate| thread_rate(rate, flood.threads, index));
                scope.spawn(move || flood_thread(flood, started, deadline, rate))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(result) => result,
                Err(_) => bail!("a flooding thread panicked"),
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let packets: u64 = counts.iter().map(|count| count.packets).sum();
    let errors: u64 = counts.iter().map(|count| count.errors).sum();
    let cpu = cpu_seconds();
    let threads = flood.threads;
    let rate = flood
        .rate
        .map(|rate| format!(",\"rate\":{rate}"))
        .unwrap_or_default();
    Ok(format!(
        "{{\"mode\":\"udp-flood\",\"elapsed_s\":{elapsed:.6},\"packets\":{packets},\
         \"errors\":{errors},\"cpu_s\":{cpu:.6},\"threads\":{threads}{rate}}}"
    ))
}

/// User+system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A non-blocking, unconnected UDP socket.
fn udp_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_INET, SOCK_DGRAM)");
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr = libc::in_addr {
        s_addr: u32::from(*addr.ip()).to_be(),
    };
    sin
}

/// Floods until `deadline`; with `rate`, paces to that many datagrams/s from `started`.
fn flood_thread(
    flood: &Flood,
    started: Instant,
    deadline: Instant,
    rate: Option<u64>,
) -> Result<FloodCount> {
    let sockets = (0..flood.sockets)
        .map(|_| udp_socket())
        .collect::<Result<Vec<_>>>()?;
    let mut dst = sockaddr_in(flood.dst);
    let mut payload = vec![0x5a_u8; flood.payload];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value, filled in below.
    let mut msgs: Vec<libc::mmsghdr> = (0..flood.batch)
        .map(|_| unsafe { mem::zeroed::<libc::mmsghdr>() })
        .collect();
    for msg in &mut msgs {
        msg.msg_hdr.msg_name = (&raw mut dst).cast();
        msg.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = &raw mut iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    let full_batch = msgs.len() as u64;
    let mut count = FloodCount::default();
    let mut turn = 0_usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let want = match rate {
            None => full_batch,
            Some(rate) => {
                let since = now.duration_since(started);
                let tick =
                    u64::try_from(since.as_nanos() / PACE_TICK.as_nanos()).unwrap_or(u64::MAX);
                let due = due_by_tick(rate, tick);
                if count.packets >= due {
                    // This tick's burst is out: sleep until the next one.
                    let next_tick = PACE_TICK.as_secs_f64() * (tick as f64 + 1.0);
                    let wake = started + Duration::from_secs_f64(next_tick);
                    thread::sleep(wake.min(deadline).saturating_duration_since(now));
                    continue;
                }
                (due - count.packets).min(full_batch)
            }
        };
        let batch = libc::c_uint::try_from(want).unwrap_or(1);
        let fd = sockets[turn % sockets.len()].as_raw_fd();
        turn = turn.wrapping_add(1);
        // SAFETY: `msgs` holds at least `batch` initialised headers pointing at `dst`, `iov` and
        // `payload`, which all outlive the call; the kernel only reads them.
        let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch, libc::MSG_DONTWAIT) };
        match u64::try_from(sent) {
            Ok(sent) => count.packets += sent,
            Err(_) => {
                count.errors += 1;
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN | libc::ENOBUFS | libc::ECONNREFUSED | libc::EINTR) => {
                        thread::yield_now();
                    }
                    _ => return Err(err).context("sendmmsg"),
                }
            }
        }
    }
    Ok(count)
}

/// Retries `connect` while the receiver is not listening yet (up to 5 s).
fn connect_retrying(dst: SocketAddr) -> Result<TcpStream> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&dst, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(err) if Instant::now() < give_up => {
                if err.kind() != io::ErrorKind::ConnectionRefused {
                    eprintln!("loadgen: connect {dst}: {err}; retrying");
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(err) => return Err(err).with_context(|| format!("connect {dst}")),
        }
    }
}

fn tcp_send(dst: SocketAddr, duration: Duration) -> Result<String> {
    let mut stream = connect_retrying(dst)?;
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .context("SO_SNDTIMEO")?;
    let buffer = vec![0xa5_u8; 128 * 1024];
    let started = Instant::now();
    let deadline = started + duration;
    let mut bytes = 0_u64;
    while Instant::now() < deadline {
        match stream.write(&buffer) {
            Ok(written) => bytes += written as u64,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => return Err(err).context("write"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Bounded: the unsent tail has at most a socket buffer to drain.
    stream.shutdown(Shutdown::Write).context("shutdown")?;
    Ok(format!(
        "{{\"mode\":\"tcp-send\",\"elapsed_s\":{elapsed:.6},\"bytes\":{bytes},\"cpu_s\":{:.6}}}",
        cpu_seconds()
    ))
}

fn tcp_recv(listen: SocketAddr, timeout: Duration) -> Result<String> {
    let give_up = Instant::now() + timeout;
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    listener.set_nonblocking(true).context("O_NONBLOCK")?;
    println!("listening");
    io::stdout().flush().context("stdout")?;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= give_up {
                    bail!("nobody connected within {timeout:?}");
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(err).context("accept"),
        }
    };
    stream.set_nonblocking(false).context("blocking")?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .context("SO_RCVTIMEO")?;
    let mut buffer = vec![0_u8; 256 * 1024];
    let mut bytes = 0_u64;
    let mut first: Option<Instant> = None;
    loop {
        if Instant::now() >= give_up {
            bail!("the stream did not end within {timeout:?}");
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                first.get_or_insert_with(Instant::now);
                bytes += read as u64;
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => return Err(err).context("read"),
        }
    }
    let elapsed = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    Ok(format!(
        "{{\"mode\":\"tcp-recv\",\"elapsed_s\":{elapsed:.6},\"bytes\":{bytes},\"cpu_s\":{:.6}}}",
        cpu_seconds()
    ))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn sockaddr_is_network_order() {
        let sin = sockaddr_in(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9));
        assert_eq!(sin.sin_port, 9_u16.to_be());
        assert_eq!(sin.sin_addr.s_addr, 0x7f00_0001_u32.to_be());
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(seconds_to_duration(-1.0), Duration::ZERO);
        assert_eq!(seconds_to_duration(f64::NAN), Duration::ZERO);
        assert_eq!(seconds_to_duration(1e9), Duration::from_secs(3600));
        assert_eq!(seconds_to_duration(0.5), Duration::from_millis(500));
    }

    #[test]
    fn short_flood_on_loopback() {
        // Sends to a closed port on loopback for a few milliseconds: no privileges needed.
        let flood = Flood {
            dst: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
            duration: Duration::from_millis(20),
            threads: 1,
            sockets: 2,
            batch: 8,
            payload: 16,
            rate: None,
        };
        let line = udp_flood(&flood).expect("flood");
        assert!(line.starts_with("{\"mode\":\"udp-flood\""), "{line}");
    }

    #[test]
    fn pacing_shares() {
        assert_eq!(thread_rate(100_000, 1, 0), 100_000);
        assert_eq!(
            (0..3).map(|i| thread_rate(100, 3, i)).collect::<Vec<_>>(),
            [34, 33, 33]
        );
        // 100k/s in bursts every 10 ms: 1000 at the start, 2000 by the second tick, ...
        assert_eq!(due_by_tick(100_000, 0), 1_000);
        assert_eq!(due_by_tick(100_000, 1), 2_000);
        assert_eq!(due_by_tick(100_000, 99), 100_000);
        assert_eq!(due_by_tick(50, 0), 0);
        assert_eq!(due_by_tick(50, 1), 1);
    }

    #[test]
    fn paced_flood_on_loopback() {
        // 2000 datagrams/s for 100 ms: about 200, in bursts of 20 every 10 ms.
        let flood = Flood {
            dst: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
            duration: Duration::from_millis(100),
            threads: 2,
            sockets: 1,
            batch: 64,
            payload: 16,
            rate: Some(2_000),
        };
        let line = udp_flood(&flood).expect("flood");
        let json: serde_json::Value = serde_json::from_str(&line).expect("json");
        let packets = json["packets"].as_u64().expect("packets");
        assert!((150..=220).contains(&packets), "{line}");
        assert_eq!(json["rate"].as_u64(), Some(2_000));
    }
}

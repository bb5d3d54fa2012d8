//! The load generator: HTTP/1.1 keep-alive, open loop at a fixed rate or closed loop at a fixed
//! concurrency.
//!
//! Why threads and blocking sockets rather than an async client: latency work needs the send
//! times to be precise. Tokio's timer wheel has a 1 ms granularity, which at the rates measured
//! here would add up to a millisecond of the generator's own lateness to every open-loop sample.
//! One OS thread per connection with `nanosleep` (timer slack lowered to 1 µs) paces to within a
//! few tens of microseconds, and a blocking read returns as soon as the response lands, with no
//! executor wake-up in between.
//!
//! **Open loop** (coordinated-omission-correct): request `i` is due at `start + i / rate`. A
//! free connection takes the next due request, waits until its due time, sends it, and records
//! the latency *from the due time*, so a stall in the system under test shows up in every
//! request that should have been sent during it, not just in the one that was stuck. Requests
//! still unsent when the step's hard deadline passes are counted as `unsent`.
//!
//! **Closed loop**: `concurrency` connections, each sending its next request as soon as the
//! previous answer arrived, for the step's duration. Latency is measured from the send.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::hist::{HistError, Latencies, Summary};

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head we accept.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Hist(#[from] HistError),
    #[error("load thread: {0}")]
    Thread(String),
    #[error("invalid plan: {0}")]
    Plan(String),
}

/// One HTTP request, serialised once and sent as is on every iteration.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub request: Arc<Vec<u8>>,
    /// Several servers taking the same request (gateways): each new connection goes to the next
    /// of these, round robin (a server listed twice gets twice the connections). Empty: `addr`.
    pub spread: Arc<Vec<SocketAddr>>,
}

impl Target {
    /// The same request spread over `addrs` (see [`Target::spread`]).
    pub fn spread_over(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.spread = Arc::new(addrs);
        self
    }
}

impl Target {
    /// A `POST path` with a JSON body and, when given, `Authorization: Basic <user:pass>`.
    pub fn post_json(addr: SocketAddr, path: &str, basic_auth: Option<&str>, body: &str) -> Self {
        use base64::Engine;
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(cred) = basic_auth {
            let b64 = base64::engine::general_purpose::STANDARD.encode(cred);
            req.push_str(&format!("authorization: Basic {b64}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        Self {
            addr,
            request: Arc::new(req.into_bytes()),
            spread: Arc::default(),
        }
    }
}

impl Target {
    /// A `GET path` with no credentials, as a browser asks for a web action.
    pub fn get(addr: SocketAddr, path: &str) -> Self {
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        Self {
            addr,
            request: Arc::new(req.into_bytes()),
            spread: Arc::default(),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// A fixed offered rate over up to `connections` connections.
    Open { rate: f64, connections: usize },
    /// `concurrency` connections back to back.
    Closed { concurrency: usize },
}

impl Mode {
    pub fn label(&self) -> String {
        match self {
            Mode::Open { rate, .. } => format!("open {rate:.0}/s"),
            Mode::Closed { concurrency } => format!("closed c={concurrency}"),
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub mode: Mode,
    pub label: String,
    /// Wall time from the first due time until the last answer.
    pub elapsed_s: f64,
    /// Answers received (any status).
    pub completed: u64,
    pub achieved_rps: f64,
    /// Successful (2xx) answers per second: what throughput ratios and targets compare, so a
    /// step that answers fast with errors never looks good.
    #[serde(default)]
    pub ok_rps: f64,
    /// Open loop: from the due time (coordinated-omission-correct). Closed loop: from the send.
    pub latency: Summary,
    /// From the actual send, whatever the mode.
    pub service_time: Summary,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection failures, timeouts and unparseable answers.
    pub io_errors: u64,
    /// Open loop: requests still unsent at the hard deadline.
    pub unsent: u64,
}

struct Shared {
    target: Target,
    mode: Mode,
    start: Instant,
    /// Open loop: total number of due requests; closed loop: unused.
    total: u64,
    interval: Duration,
    /// Closed loop: stop sending after this instant.
    end: Instant,
    /// Nothing is sent after this instant.
    hard_deadline: Instant,
    next: AtomicU64,
    stop: AtomicBool,
    /// Connections opened so far (picks the next server of a spread target).
    opened: AtomicU64,
}

impl Shared {
    /// Where the next connection goes.
    fn next_addr(&self) -> SocketAddr {
        let spread = &self.target.spread;
        if spread.is_empty() {
            return self.target.addr;
        }
        let n = self.opened.fetch_add(1, Ordering::Relaxed) as usize;
        spread[n % spread.len()]
    }
}

struct WorkerOut {
    latency: Latencies,
    service: Latencies,
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    attempted: u64,
    last_done: Instant,
}

/// Runs one step (blocking: call it from a blocking thread).
pub fn run(target: &Target, mode: Mode, duration: Duration) -> Result<StepResult, LoadError> {
    let (threads, total, interval) = match mode {
        Mode::Open { rate, connections } => {
            if rate.is_nan() || rate <= 0.0 || connections == 0 {
                return Err(LoadError::Plan(format!("{mode:?}")));
            }
            let total = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
            (connections, total, Duration::from_secs_f64(1.0 / rate))
        }
        Mode::Closed { concurrency } => {
            if concurrency == 0 {
                return Err(LoadError::Plan(format!("{mode:?}")));
            }
            (concurrency, 0, Duration::ZERO)
        }
    };
    // A little head start so every thread is parked before the first due time.
    let start = Instant::now() + Duration::from_millis(20);
    let grace = (duration / 2).max(Duration::from_secs(1));
    let shared = Arc::new(Shared {
        target: target.clone(),
        mode,
        start,
        total,
        interval,
        end: start + duration,
        hard_deadline: start + duration + grace,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        opened: AtomicU64::new(0),
    });
    let mut handles = Vec::with_capacity(threads);
    for n in 0..threads {
        let s = shared.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-{n}"))
            .spawn(move || worker(&s))
            .map_err(|e| LoadError::Thread(e.to_string()))?;
        handles.push(h);
    }
    let mut latency = Latencies::new()?;
    let mut service = Latencies::new()?;
    let mut statuses = BTreeMap::new();
    let mut io_errors = 0;
    let mut attempted = 0;
    let mut last_done = start;
    for h in handles {
        let out = h
            .join()
            .map_err(|_| LoadError::Thread("a load thread panicked".into()))??;
        latency.merge(&out.latency)?;
        service.merge(&out.service)?;
        for (s, n) in out.statuses {
            *statuses.entry(s).or_insert(0) += n;
        }
        io_errors += out.io_errors;
        attempted += out.attempted;
        last_done = last_done.max(out.last_done);
    }
    let completed = statuses.values().sum::<u64>();
    let elapsed = last_done
        .saturating_duration_since(start)
        .max(Duration::from_millis(1));
    let unsent = match mode {
        Mode::Open { .. } => total.saturating_sub(attempted),
        Mode::Closed { .. } => 0,
    };
    Ok(StepResult {
        mode,
        label: mode.label(),
        elapsed_s: elapsed.as_secs_f64(),
        completed,
        achieved_rps: completed as f64 / elapsed.as_secs_f64(),
        ok_rps: statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, n)| n)
            .sum::<u64>() as f64
            / elapsed.as_secs_f64(),
        latency: latency.summary(),
        service_time: service.summary(),
        statuses,
        io_errors,
        unsent,
    })
}

fn worker(s: &Shared) -> Result<WorkerOut, LoadError> {
    lower_timer_slack();
    let mut out = WorkerOut {
        latency: Latencies::new()?,
        service: Latencies::new()?,
        statuses: BTreeMap::new(),
        io_errors: 0,
        attempted: 0,
        last_done: s.start,
    };
    let mut conn: Option<Conn> = None;
    sleep_until(s.start);
    loop {
        if s.stop.load(Ordering::Relaxed) {
            break;
        }
        let due = match s.mode {
            Mode::Open { .. } => {
                let i = s.next.fetch_add(1, Ordering::Relaxed);
                if i >= s.total {
                    break;
                }
                let due = s.start + s.interval.mul_f64(i as f64);
                sleep_until(due);
                due
            }
            Mode::Closed { .. } => Instant::now(),
        };
        let now = Instant::now();
        let past_end = matches!(s.mode, Mode::Closed { .. }) && now >= s.end;
        if past_end || now >= s.hard_deadline {
            if now >= s.hard_deadline {
                s.stop.store(true, Ordering::Relaxed);
            }
            break;
        }
        out.attempted += 1;
        let sent = Instant::now();
        match exchange(&mut conn, s) {
            Ok(status) => {
                let done = Instant::now();
                out.latency.record(done - due);
                out.service.record(done - sent);
                *out.statuses.entry(status).or_insert(0) += 1;
                out.last_done = done;
            }
            Err(_) => {
                conn = None;
                out.io_errors += 1;
                out.last_done = Instant::now();
            }
        }
    }
    Ok(out)
}

/// `nanosleep` wakes up to 50 µs late by default (the timer slack); ask for 1 µs.
fn lower_timer_slack() {
    // SAFETY: prctl with integer arguments only affects the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A keep-alive connection and its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Requests answered on this connection so far.
    used: u64,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            used: 0,
        })
    }
}

/// Sends the request and reads one answer; returns its status. A failure on a reused
/// connection before any byte of the answer arrived (the server closed it while idle) is
/// retried once on a new connection.
fn exchange(conn: &mut Option<Conn>, s: &Shared) -> std::io::Result<u16> {
    for attempt in 0..2 {
        if conn.is_none() {
            *conn = Some(Conn::open(s.next_addr())?);
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let reused = c.used > 0;
        match round_trip(c, &s.target.request) {
            Ok((status, keep)) => {
                c.used += 1;
                if !keep {
                    *conn = None;
                }
                return Ok(status);
            }
            Err(RoundTrip::NothingRead(e)) if reused && attempt == 0 => {
                *conn = None;
                let _ = e;
            }
            Err(RoundTrip::NothingRead(e) | RoundTrip::Failed(e)) => {
                *conn = None;
                return Err(e);
            }
        }
    }
    Err(std::io::Error::other("no connection"))
}

enum RoundTrip {
    NothingRead(std::io::Error),
    Failed(std::io::Error),
}

fn round_trip(c: &mut Conn, request: &[u8]) -> Result<(u16, bool), RoundTrip> {
    c.stream
        .write_all(request)
        .map_err(RoundTrip::NothingRead)?;
    c.buf.clear();
    // Read the head.
    let head_end = loop {
        if let Some(p) = find(&c.buf, b"\r\n\r\n") {
            break p + 4;
        }
        if c.buf.len() > MAX_HEAD {
            return Err(RoundTrip::Failed(invalid("response head too large")));
        }
        let n = read_more(c).map_err(|e| {
            if c.buf.is_empty() {
                RoundTrip::NothingRead(e)
            } else {
                RoundTrip::Failed(e)
            }
        })?;
        if n == 0 {
            let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
            return Err(if c.buf.is_empty() {
                RoundTrip::NothingRead(e)
            } else {
                RoundTrip::Failed(e)
            });
        }
    };
    let head = parse_head(&c.buf[..head_end]).map_err(RoundTrip::Failed)?;
    let body = match head.body {
        Body::Length(n) => read_exact_body(c, head_end, n),
        Body::Chunked => read_chunked_body(c, head_end),
        Body::None => Ok(()),
    };
    body.map_err(RoundTrip::Failed)?;
    Ok((head.status, head.keep_alive))
}

fn read_more(c: &mut Conn) -> std::io::Result<usize> {
    let old = c.buf.len();
    c.buf.resize(old + 8192, 0);
    match c.stream.read(&mut c.buf[old..]) {
        Ok(n) => {
            c.buf.truncate(old + n);
            Ok(n)
        }
        Err(e) => {
            c.buf.truncate(old);
            Err(e)
        }
    }
}

fn read_exact_body(c: &mut Conn, from: usize, len: usize) -> std::io::Result<()> {
    while c.buf.len() < from + len {
        if read_more(c)? == 0 {
            return Err(invalid("closed inside the body"));
        }
    }
    Ok(())
}

fn read_chunked_body(c: &mut Conn, mut pos: usize) -> std::io::Result<()> {
    loop {
        // The chunk-size line.
        let line_end = loop {
            if let Some(p) = find(&c.buf[pos..], b"\r\n") {
                break pos + p;
            }
            if read_more(c)? == 0 {
                return Err(invalid("closed inside a chunk header"));
            }
        };
        let size_text = std::str::from_utf8(&c.buf[pos..line_end])
            .map_err(|_| invalid("chunk size"))?
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let size = usize::from_str_radix(&size_text, 16).map_err(|_| invalid("chunk size"))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                if let Some(p) = find(&c.buf[pos..], b"\r\n") {
                    if p == 0 {
                        return Ok(());
                    }
                    pos += p + 2;
                    continue;
                }
                if read_more(c)? == 0 {
                    return Err(invalid("closed inside trailers"));
                }
            }
        }
        read_exact_body(c, pos, size + 2)?;
        pos += size + 2;
    }
}

enum Body {
    Length(usize),
    Chunked,
    None,
}

struct Head {
    status: u16,
    keep_alive: bool,
    body: Body,
}

fn parse_head(bytes: &[u8]) -> std::io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut body = Body::None;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| invalid("content-length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            body = Body::Chunked;
        } else if k.eq_ignore_ascii_case("connection") {
            keep_alive = !v.eq_ignore_ascii_case("close");
        }
    }
    if let (Body::None, Some(n)) = (&body, length) {
        body = Body::Length(n);
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        body = Body::None;
    }
    Ok(Head {
        status,
        keep_alive,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A tiny blocking server answering every request with `answer`.
    fn serve(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    let mut acc = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        acc.extend_from_slice(&buf[..n]);
                        while let Some(p) = find(&acc, b"\r\n\r\n") {
                            // Requests in these tests carry a 2-byte body.
                            let end = p + 4 + 2;
                            if acc.len() < end {
                                break;
                            }
                            acc.drain(..end);
                            if s.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn closed_loop_counts_statuses() {
        let addr = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let t = Target::post_json(addr, "/x", Some("u:p"), "{}");
        let r = run(
            &t,
            Mode::Closed { concurrency: 2 },
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(r.completed > 10, "{r:?}");
        assert_eq!(r.statuses.get(&200), Some(&r.completed));
        assert_eq!(r.io_errors, 0);
        assert!(
            r.ok_rps > 0.0 && (r.ok_rps - r.achieved_rps).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn open_loop_sends_what_was_offered() {
        let addr =
            serve(b"HTTP/1.1 429 X\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        let t = Target::post_json(addr, "/x", None, "{}");
        let mode = Mode::Open {
            rate: 500.0,
            connections: 4,
        };
        let r = run(&t, mode, Duration::from_millis(200)).unwrap();
        assert_eq!(r.completed + r.unsent + r.io_errors, 100, "{r:?}");
        assert_eq!(r.statuses.get(&429).copied().unwrap_or(0), r.completed);
        // Errors answered are throughput of nothing.
        assert_eq!(r.ok_rps, 0.0, "{r:?}");
    }

    #[test]
    fn head_parsing() {
        let h = parse_head(b"HTTP/1.1 503 X\r\nContent-Length: 7\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(h.status, 503);
        assert!(!h.keep_alive);
        assert!(matches!(h.body, Body::Length(7)));
    }
}

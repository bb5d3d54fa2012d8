//! The minimal upstream every edge scenario (a, b, c, f, g, h, i, j) sends its requests to.
//!
//! It runs as its own process (`whisk-bench upstream`, started by the bench itself) so its CPU
//! time is measured apart from the load generator's. One thread, a current-thread Tokio runtime,
//! HTTP/1.1 keep-alive, and a fixed answer: as close to free as an HTTP server gets, so whatever
//! the scenarios add is visible. It announces itself with `WHISK_BENCH_UPSTREAM <ip:port>`.
//!
//! What it answers depends on its [`Mode`]:
//!
//! * `plain` — a fixed 11-byte JSON body (a … h, j);
//! * `proxy` — what a container proxy answers a blocking invoke: the activation record (or, with
//!   `x-whisk-result: true`, the bare result) and `x-openwhisk-activation-id` (i, sequences: the
//!   router runs each component as such a call and reads the record);
//! * `cache` — the plain body with `cache-control: max-age=600` and `x-openwhisk-activation-id`,
//!   as a proxy answers an action that opts into the router's response cache (i, cache hits).
//!
//! In every mode `GET /__bench/requests` answers how many other requests it has served (so a
//! scenario can check that cache hits never reached it); that request is not counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const MARKER: &str = "WHISK_BENCH_UPSTREAM";

/// The path that reports the request count.
pub const COUNT_PATH: &str = "/__bench/requests";

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

/// The activation id used when a request carries none (32 lowercase hex characters).
const DEFAULT_ACTIVATION_ID: &str = "0123456789abcdef0123456789abcdef";

/// Requests served (not counting [`COUNT_PATH`]).
static SERVED: AtomicU64 = AtomicU64::new(0);

/// What the upstream answers; see the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    #[default]
    Plain,
    Proxy,
    Cache,
}

impl Mode {
    /// The command-line spelling of the mode.
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Proxy => "proxy",
            Mode::Cache => "cache",
        }
    }
}

/// Serves forever on `listen` (port 0 picks a free one), announcing the bound address.
pub fn run(listen: SocketAddr, mode: Mode) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        println!("{MARKER} {}", listener.local_addr()?);
        loop {
            let (sock, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve(sock, mode).await;
            });
        }
    })
}

async fn serve(mut sock: TcpStream, mode: Mode) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Answer every complete request in the buffer (pipelining tolerated).
        while let Some((head_len, len)) = complete_request(&buf) {
            let head = &buf[..head_len];
            if head.starts_with(b"GET /__bench/requests") {
                sock.write_all(&count_answer()).await?;
            } else {
                SERVED.fetch_add(1, Ordering::Relaxed);
                match mode {
                    Mode::Plain => sock.write_all(ANSWER).await?,
                    Mode::Proxy | Mode::Cache => sock.write_all(&answer(mode, head)).await?,
                }
            }
            buf.drain(..len);
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn count_answer() -> Vec<u8> {
    let body = SERVED.load(Ordering::Relaxed).to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The value of header `name` (lower case) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// The answer of the `proxy` and `cache` modes to the request whose head is `head`.
fn answer(mode: Mode, head: &[u8]) -> Vec<u8> {
    let head = std::str::from_utf8(head).unwrap_or_default();
    let id = header(head, "x-whisk-activation-id")
        .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or(DEFAULT_ACTIVATION_ID);
    const RESULT: &str = r#"{"ok":true}"#;
    let (extra, body) = match mode {
        Mode::Cache => ("cache-control: max-age=600\r\n", RESULT.to_owned()),
        _ if header(head, "x-whisk-result").is_some_and(|v| v == "true") => ("", RESULT.to_owned()),
        _ => (
            "",
            format!(
                r#"{{"activationId":"{id}","duration":1,"response":{{"status":"success","success":true,"result":{RESULT}}}}}"#
            ),
        ),
    };
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-openwhisk-activation-id: {id}\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The head length and the total length of the first complete request in `buf` (head +
/// `content-length` body), if any.
fn complete_request(buf: &[u8]) -> Option<(usize, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let body = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + body).then_some((head_end, head_end + body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_boundaries() {
        assert_eq!(complete_request(b"GET / HTTP/1.1\r\n\r\n"), Some((18, 18)));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(complete_request(post), Some((post.len() - 2, post.len())));
        assert_eq!(complete_request(&post[..post.len() - 1]), None);
        assert_eq!(complete_request(b"GET / HTTP/1.1\r\n"), None);
    }

    fn text(mode: Mode, head: &str) -> String {
        String::from_utf8(answer(mode, head.as_bytes())).unwrap()
    }

    #[test]
    fn proxy_mode_answers_an_activation_record() {
        let id = "a".repeat(32);
        let head = format!("POST /x HTTP/1.1\r\nx-whisk-activation-id: {id}\r\n\r\n");
        let a = text(Mode::Proxy, &head);
        assert!(
            a.contains(&format!("x-openwhisk-activation-id: {id}\r\n")),
            "{a}"
        );
        let (h, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(
            h.contains(&format!("content-length: {}", body.len())),
            "{a}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["activationId"], id.as_str());
        assert_eq!(v["response"]["status"], "success");
        assert_eq!(v["response"]["result"]["ok"], true);
        let bare = text(
            Mode::Proxy,
            "POST /x HTTP/1.1\r\nX-Whisk-Result: true\r\n\r\n",
        );
        assert!(bare.ends_with("\r\n\r\n{\"ok\":true}"), "{bare}");
    }

    #[test]
    fn cache_mode_opts_into_the_router_cache() {
        let a = text(Mode::Cache, "POST /x HTTP/1.1\r\n\r\n");
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("cache-control: max-age=600\r\n"), "{a}");
        assert!(a.contains("x-openwhisk-activation-id: "), "{a}");
        assert!(a.contains("content-length: 11\r\n"), "{a}");
    }
}

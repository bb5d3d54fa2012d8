//! The minimal upstream every edge scenario (a, b, c, f, g, h, j) sends its requests to.
//!
//! It runs as its own process (`whisk-bench upstream`, started by the bench itself) so its CPU
//! time is measured apart from the load generator's. One thread, a current-thread Tokio runtime,
//! HTTP/1.1 keep-alive, and a fixed 11-byte JSON answer: as close to free as an HTTP server gets,
//! so whatever the scenarios add is visible. It announces itself with
//! `WHISK_BENCH_UPSTREAM <ip:port>`.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const MARKER: &str = "WHISK_BENCH_UPSTREAM";

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

/// Serves forever on `listen` (port 0 picks a free one), announcing the bound address.
pub fn run(listen: SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        println!("{MARKER} {}", listener.local_addr()?);
        loop {
            let (sock, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve(sock).await;
            });
        }
    })
}

async fn serve(mut sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Answer every complete request in the buffer (pipelining tolerated).
        while let Some(len) = complete_request(&buf) {
            buf.drain(..len);
            sock.write_all(ANSWER).await?;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The length of the first complete request in `buf` (head + `content-length` body), if any.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let body = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + body).then_some(head_end + body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_boundaries() {
        assert_eq!(complete_request(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(complete_request(post), Some(post.len()));
        assert_eq!(complete_request(&post[..post.len() - 1]), None);
        assert_eq!(complete_request(b"GET / HTTP/1.1\r\n"), None);
    }
}

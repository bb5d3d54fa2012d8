//! Waiting on a condition with a deadline: how tests synchronise with processes they started,
//! instead of sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds; panics naming `what` once `timeout` passed.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

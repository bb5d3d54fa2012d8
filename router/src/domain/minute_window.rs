//! The per-minute invocation limit, meaning per minute: no 60-second window, however aligned,
//! admits more than the limit.
//!
//! A token bucket (GCRA) with a burst of the whole allowance lets a namespace through at up to
//! twice its limit in a minute (a full burst, then the refill), and a clock-minute counter (what
//! OpenWhisk does) lets 2× through across a minute boundary. This counts admissions in 100 ms
//! buckets and admits only while the buckets covering the last 60.1 s hold fewer than the
//! limit — so any 60-second window sees at most the limit (the extra 100 ms makes it slightly
//! stricter, never looser). Memory is fixed (601 counters per namespace) and an admission is O(1);
//! only a refusal walks the buckets, to compute an honest `Retry-After`: the time at which enough
//! old admissions leave the window for a retry to pass.

use std::sync::Mutex;
use std::time::Duration;

const TICK_MS: u64 = 100;
/// 60 s of buckets plus the one being filled.
const SLOTS: u64 = 601;

/// Admissions of one namespace over the last minute.
pub struct MinuteWindow {
    buckets: Mutex<Buckets>,
}

struct Buckets {
    counts: [u32; SLOTS as usize],
    /// The tick (epoch ms / 100) of the newest bucket.
    head: u64,
    /// The sum of `counts`.
    sum: u64,
}

impl Default for MinuteWindow {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(Buckets {
                counts: [0; SLOTS as usize],
                head: 0,
                sum: 0,
            }),
        }
    }
}

impl Buckets {
    /// Moves the window to `tick`, dropping the buckets that left it.
    fn advance(&mut self, tick: u64) {
        if tick <= self.head {
            return;
        }
        let steps = (tick - self.head).min(SLOTS);
        for i in 1..=steps {
            let slot = ((self.head + i) % SLOTS) as usize;
            self.sum -= u64::from(self.counts[slot]);
            self.counts[slot] = 0;
        }
        self.head = tick;
    }
}

impl MinuteWindow {
    /// Admits one invocation at `now_ms` under a limit of `limit` per minute, or says how long
    /// until one would be admitted.
    pub fn try_admit(&self, now_ms: u64, limit: u32) -> Result<(), Duration> {
        let limit = u64::from(limit);
        if limit == 0 {
            return Err(Duration::from_secs(60));
        }
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let tick = now_ms / TICK_MS;
        b.advance(tick);
        if b.sum < limit {
            let slot = (tick % SLOTS) as usize;
            b.counts[slot] = b.counts[slot].saturating_add(1);
            b.sum += 1;
            return Ok(());
        }
        // The oldest buckets leave first: find the one whose departure brings the sum under the
        // limit. Bucket of tick `t` leaves when the head reaches `t + SLOTS`.
        let mut freed = 0u64;
        for k in 0..SLOTS {
            let t = b.head + 1 + k - SLOTS;
            freed += u64::from(b.counts[(t % SLOTS) as usize]);
            if b.sum - freed < limit {
                let leaves_ms = (t + SLOTS) * TICK_MS;
                return Err(Duration::from_millis(leaves_ms.saturating_sub(now_ms)));
            }
        }
        Err(Duration::from_secs(60))
    }

    /// Admissions in the last minute as of `now_ms`.
    pub fn count(&self, now_ms: u64) -> u32 {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.advance(now_ms / TICK_MS);
        b.sum.min(u64::from(u32::MAX)) as u32
    }

    /// Forgets every admission (a new limit starts afresh).
    pub fn reset(&self) {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.counts = [0; SLOTS as usize];
        b.sum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn a_steady_stream_never_gets_more_than_the_limit_in_any_minute() {
        // 10 requests per second for three minutes against 100 per minute (the case where a
        // token bucket let 199 through in one minute).
        let w = MinuteWindow::default();
        let mut admitted = Vec::new();
        for i in 0..1800u64 {
            let now = T0 + i * 100;
            if w.try_admit(now, 100).is_ok() {
                admitted.push(now);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|t| **t < start + 60_000)
                .count();
            assert!(
                in_window <= 100,
                "{in_window} admitted in the minute from {start}"
            );
        }
        // And the namespace still gets (almost) all of its allowance: 3 minutes, 100 each.
        assert!(admitted.len() >= 295, "only {} admitted", admitted.len());
    }

    #[test]
    fn a_burst_gets_the_whole_allowance_then_an_honest_retry_after() {
        let w = MinuteWindow::default();
        for _ in 0..100 {
            w.try_admit(T0, 100).unwrap();
        }
        let retry = w.try_admit(T0 + 5_000, 100).unwrap_err();
        // The burst leaves the window 60 s (+ one bucket) after it came.
        assert!(
            retry > Duration::from_secs(54) && retry <= Duration::from_millis(55_100),
            "{retry:?}"
        );
        // Just before, still refused; at the time it said, admitted.
        let at = T0 + 5_000 + retry.as_millis() as u64;
        assert!(w.try_admit(at - 100, 100).is_err());
        assert!(w.try_admit(at, 100).is_ok());
    }

    #[test]
    fn zero_refuses_and_reset_forgets() {
        let w = MinuteWindow::default();
        assert_eq!(w.try_admit(T0, 0), Err(Duration::from_secs(60)));
        w.try_admit(T0, 1).unwrap();
        assert!(w.try_admit(T0 + 1, 1).is_err());
        w.reset();
        assert!(w.try_admit(T0 + 2, 1).is_ok());
    }
}

//! The router's whole configuration, in one place: what it listens on, whom it follows, the
//! policies that shape its decisions, and the fixed limits those decisions use.
//!
//! [`Config`] is what `whisk-router` parses from its command line and environment; [`Policy`] is
//! the part the decision pipeline reads (copied into the domain at start-up). The constants below
//! are the limits that are not worth a flag, named once here instead of in every module using them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser};

/// How long a container that refused a connection stays out of rotation.
pub const CONNECT_FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// The breaker's wait after a 429 without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The largest forwarded body the router keeps to replay it after a 429.
pub const MAX_KEPT_BODY: u64 = 512 * 1024;
/// The largest response the cache keeps (Envoy buffers it whole).
pub const MAX_CACHED_BODY: u64 = 256 * 1024;
/// Bytes of response bodies the cache holds at most.
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
/// How long a refusal makes the `auto` replay policy keep an action's bodies.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);
/// The largest subscription message (snapshot) the router accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
/// How long Envoy is asked to wait beyond a deadline the router is waiting for.
pub const HOLD_GRACE: Duration = Duration::from_secs(1);
/// How long the router waits for a replayed request's container beyond the caller's deadline
/// (the container proxy answers 202 at the deadline itself).
pub const REPLAY_GRACE: Duration = Duration::from_secs(5);
/// How long past an action's time limit the router keeps the slots of an activation whose caller
/// stopped waiting (the proxy may queue it before it runs).
pub const END_GRACE: Duration = Duration::from_secs(10);

/// How long a web request waits for its activation before OpenWhisk's 202 "Response not yet
/// ready." (OpenWhisk's `maxWaitForBlockingActivation`).
pub const WEB_WAIT: Duration = Duration::from_secs(60);
/// What the router allows itself past an action's time limit when it runs an activation itself.
pub const RUN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "whisk-router",
    about = "Decides every OpenWhisk invoke behind Envoy"
)]
pub struct Config {
    /// TCP address for Envoy's gRPC calls (gateway flavour). Port 0 picks a free one.
    #[arg(long, env = "WHISK_ROUTER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Unix domain socket for Envoy's gRPC calls (sidecar flavour).
    #[arg(long, env = "WHISK_ROUTER_UDS")]
    pub uds: Option<PathBuf>,
    /// HTTP address for /healthz and /readyz. Port 0 picks a free one.
    #[arg(long, env = "WHISK_ROUTER_ADMIN", default_value = "127.0.0.1:0")]
    pub admin: Option<SocketAddr>,
    /// The control plane's gRPC URL, e.g. http://127.0.0.1:7001.
    #[arg(long, env = "WHISK_CONTROLPLANE")]
    pub controlplane: String,
    /// File holding the token this router presents to the control plane (`authorization: Bearer`
    /// on every call): the control plane's `router-token`, or a mounted Secret. Read at start and
    /// again before every resubscription.
    #[arg(long, env = "WHISK_CONTROLPLANE_TOKEN_FILE")]
    pub controlplane_token_file: Option<PathBuf>,
    /// File holding the token Envoy presents on every ext_proc/ext_authz stream over TCP (gRPC
    /// metadata `x-whisk-ingress-token`); streams without it are refused. Without this flag the
    /// TCP port serves any caller: use it only with a private Unix socket (`--uds`) or in tests.
    #[arg(long, env = "WHISK_INGRESS_TOKEN_FILE")]
    pub ingress_token_file: Option<PathBuf>,
    /// Name of this router, unique per process (default: router-<pid>-<random>).
    #[arg(long, env = "WHISK_ROUTER_ID")]
    pub router_id: Option<String>,
    #[command(flatten)]
    pub policy: Policy,
    /// Logs and traces (`--log-json`, `--otlp-endpoint`, `--trace-sample-ratio`).
    #[command(flatten)]
    pub telemetry: whisk_telemetry::TelemetryArgs,
}

impl Config {
    /// The TCP listener: as given, or any free loopback port when no socket path is given either.
    pub fn tcp_listener(&self) -> Option<SocketAddr> {
        match (self.listen, &self.uds) {
            (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            (l, _) => l,
        }
    }

    /// This router's name.
    pub fn router_id(&self) -> String {
        self.router_id.clone().unwrap_or_else(|| {
            format!(
                "router-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )
        })
    }
}

/// The knobs of the decision pipeline.
#[derive(Debug, Clone, Copy, Args)]
pub struct Policy {
    /// With every container busy, how long to wait for a slot before asking for another one (ms).
    #[arg(long = "busy-wait-ms", default_value_t = 100)]
    pub busy_wait_ms: u64,
    /// The longest a request waits for a cold start (ms).
    #[arg(long = "max-cold-wait-ms", default_value_t = 60_000)]
    pub max_cold_wait_ms: u64,
    /// When a forwarded blocking invoke keeps its body, so that a container's 429 can be
    /// replayed elsewhere: `auto` (while other routers share the containers, or the action was
    /// refused in the last minute), `always` or `never`. Keeping a body costs one more ext_proc
    /// message each way.
    #[arg(long, env = "WHISK_ROUTER_REPLAY", default_value = "auto")]
    pub replay: ReplayPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            busy_wait_ms: 100,
            max_cold_wait_ms: 60_000,
            replay: ReplayPolicy::Auto,
        }
    }
}

impl Policy {
    pub fn busy_wait(&self) -> Duration {
        Duration::from_millis(self.busy_wait_ms)
    }

    pub fn max_cold_wait(&self) -> Duration {
        Duration::from_millis(self.max_cold_wait_ms)
    }
}

/// When the router keeps a forwarded blocking invoke's body to replay it after a 429 (the
/// decision itself is `domain::refusal`'s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayPolicy {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown replay policy '{0}': expected auto, always or never")]
pub struct UnknownPolicy(String);

impl FromStr for ReplayPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ReplayPolicy::Auto),
            "always" => Ok(ReplayPolicy::Always),
            "never" => Ok(ReplayPolicy::Never),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

impl fmt::Display for ReplayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayPolicy::Auto => "auto",
            ReplayPolicy::Always => "always",
            ReplayPolicy::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_policy_parses_what_it_prints() {
        for p in [
            ReplayPolicy::Auto,
            ReplayPolicy::Always,
            ReplayPolicy::Never,
        ] {
            assert_eq!(p.to_string().parse::<ReplayPolicy>().unwrap(), p);
        }
        assert!("sometimes".parse::<ReplayPolicy>().is_err());
    }

    #[test]
    fn defaults_match_the_command_line() {
        let c = Config::parse_from(["whisk-router", "--controlplane", "http://x"]);
        let d = Policy::default();
        assert_eq!(c.policy.busy_wait_ms, d.busy_wait_ms);
        assert_eq!(c.policy.max_cold_wait_ms, d.max_cold_wait_ms);
        assert_eq!(c.policy.replay, d.replay);
        assert_eq!(
            c.tcp_listener(),
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
    }
}

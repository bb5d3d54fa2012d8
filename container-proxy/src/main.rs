//! `whisk-container-proxy`: binds, prints `WHISK_PROXY_LISTENING <ip:port>` on stdout (Contract 3),
//! serves until SIGTERM/SIGINT, then stops its launcher processes and every process of the
//! action's own user (what left the tree), and removes its temporary directories; at start it
//! removes those of dead proxies (`whisk_stack::leftovers`). Logs go to stderr (JSON lines
//! with `--log-json`); spans go to an OTLP collector with `--otlp-endpoint`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use whisk_container_proxy::config::Config;
use whisk_container_proxy::executor::user::{ActionUidFlag, ActionUser};
use whisk_container_proxy::proxy::Proxy;
use whisk_container_proxy::server;

/// How long in-flight requests may take to finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(10);

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Takes the container token out of the environment. Called first thing in `main`, while the
/// process has a single thread, so that nothing started later (the action's processes, whose
/// environment is cleared anyway) can inherit or read it. The value is also blanked where the
/// kernel shows it (`/proc/<pid>/environ` reads the memory the process started with, which
/// removing a variable does not touch).
fn take_token() -> whisk_vocab::ContainerToken {
    let name = whisk_vocab::token::CONTAINER_TOKEN_ENV;
    let token = std::env::var(name)
        .ok()
        .and_then(|t| whisk_vocab::ContainerToken::from_wire(&t))
        .unwrap_or_default();
    // SAFETY: no other thread exists yet (the async runtime is built after this).
    unsafe {
        blank_initial_env_value(name);
        std::env::remove_var(name);
    }
    token
}

/// Overwrites the value of `name=` in the process's environment block with `0`s, in place.
///
/// # Safety
/// Only while no other thread reads or writes the environment.
unsafe fn blank_initial_env_value(name: &str) {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: `environ` is a null-terminated array of NUL-terminated strings owned by the
    // process; each byte overwritten lies before its string's NUL.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if text.starts_with(prefix.as_bytes()) {
                let value_len = text.len() - prefix.len();
                std::ptr::write_bytes((*entry).add(prefix.len()), b'0', value_len);
            }
            entry = entry.add(1);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let token = take_token();
    let mut config = Config::parse();
    config.token = token;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let telemetry = whisk_telemetry::init_tracing(
        "whisk-container-proxy",
        config.telemetry.log_json,
        config.telemetry.otlp(),
    )
    .context("setting up logs and traces")?;
    // What proxies killed before they could clean up left: processes, temporary directories.
    let swept = whisk_stack::leftovers::sweep();
    for dir in &swept.dirs {
        tracing::info!(dir = %dir.display(), "removed a dead proxy's temporary directory");
    }
    if swept.processes > 0 {
        tracing::info!(
            processes = swept.processes,
            "killed processes a dead proxy's actions left"
        );
    }
    let proxy = Proxy::start(&config, |k| std::env::var(k).ok())
        .await
        .context("starting the proxy")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "WHISK_PROXY_LISTENING {addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, container_id = %config.container_id, "listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, proxy.clone(), async {
        let _ = stop_rx.await;
    }));
    stop_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time");
    }
    proxy.shutdown().await;
    // Whatever the action left running (a detached, double-forked child) cannot leave its user:
    // when actions run as a user of their own, every process of that user dies with the proxy.
    // Only a user of its own (`auto`): a uid given with `--action-uid` may be shared.
    if config.action_uid == ActionUidFlag::Auto
        && let Some(uid) = ActionUser::choose(config.action_uid).uid()
    {
        whisk_stack::leftovers::kill_user(uid);
    }
    // Export the last spans before exiting.
    drop(telemetry);
    Ok(())
}

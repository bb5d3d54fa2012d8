//! The kubelet half of the stand-in: for each created pod, schedules it, starts the container it
//! has a local binary for (the container proxy) as a child process, publishes the pod IP and the
//! port mapping, runs the readiness probe from the pod spec, and moves the pod Pending → Running →
//! Ready; a process that dies turns the pod Failed; a graceful delete sends SIGTERM, waits at
//! most the grace period, and removes the pod.
//!
//! The proxy is started with the pod spec's arguments except three substitutions that stand for
//! what this machine lacks: `--listen 127.0.0.1:0` (pods share loopback), `--executor local` and
//! no `--runtime-url` (the local executor stands in for the runtime image).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::PORT_MAP_ANNOTATION;
use crate::clock::now;

const LISTENING: &str = "WHISK_PROXY_LISTENING ";
const NODE: &str = "standin-node";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API server asks of a pod's kubelet.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ctl {
    /// Graceful delete: SIGTERM, then SIGKILL after the grace period.
    Terminate(Duration),
    /// Immediate delete (grace 0).
    Kill,
}

/// The API server's line to a pod's kubelet task.
pub(crate) struct Handle {
    pub(crate) ctl: mpsc::UnboundedSender<Ctl>,
    pub(crate) pid: Arc<Mutex<Option<u32>>>,
}

/// What a kubelet needs of the API server: the pods it runs, and somewhere to park its tasks.
pub(crate) trait PodStore: Send + Sync + 'static {
    /// Changes a pod (status, annotations) as a kubelet does; `None` if it is gone.
    fn update_pod_with(&self, ns: &str, name: &str, f: &mut dyn FnMut(&mut Pod)) -> Option<Pod>;
    /// Removes a pod for good.
    fn remove_pod(&self, ns: &str, name: &str) -> Option<Pod>;
    /// Whether pulling `image` fails (a test hook).
    fn unpullable(&self, image: &str) -> bool;
    /// The local program standing in for `image`, if it can run here.
    fn image_binary(&self, image: &str) -> Option<std::path::PathBuf>;
    fn track(&self, task: tokio::task::JoinHandle<()>);
}

/// [`PodStore::update_pod_with`] for a one-shot change.
fn update_pod(store: &dyn PodStore, ns: &str, name: &str, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
    let mut f = Some(f);
    store.update_pod_with(ns, name, &mut |p| {
        if let Some(f) = f.take() {
            f(p)
        }
    })
}

pub(crate) fn spawn(shared: Arc<dyn PodStore>, ns: String, name: String, pod: Pod) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = Arc::new(Mutex::new(None));
    let task = tokio::spawn(run(shared.clone(), ns, name, pod, rx, pid.clone()));
    shared.track(task);
    Handle { ctl: tx, pid }
}

fn condition(type_: &str, ok: bool) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

fn set_condition(pod: &mut Pod, type_: &str, ok: bool) {
    let status = pod.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != type_);
    conds.push(condition(type_, ok));
}

fn container_statuses(pod: &Pod, state: ContainerState, ready: bool) -> Vec<ContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: format!("standin://{}", c.image.clone().unwrap_or_default()),
            ready,
            restart_count: 0,
            started: Some(state.running.is_some()),
            state: Some(state.clone()),
            ..Default::default()
        })
        .collect()
}

fn set_phase(pod: &mut Pod, phase: &str) {
    pod.status.get_or_insert_with(Default::default).phase = Some(phase.into());
}

/// The pod's end: terminal phase, containers terminated, not ready.
fn terminated(pod: &mut Pod, code: i32, reason: &str) {
    let state = ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.into()),
            finished_at: Some(now()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let statuses = container_statuses(pod, state, false);
    let status = pod.status.get_or_insert_with(Default::default);
    status.container_statuses = Some(statuses);
    set_phase(pod, if code == 0 { "Succeeded" } else { "Failed" });
    set_condition(pod, "ContainersReady", false);
    set_condition(pod, "Ready", false);
}

/// `--listen X` → port of X; substitutions for this machine.
fn local_args(args: &[String]) -> (Vec<String>, Option<u16>) {
    let mut out = Vec::new();
    let mut port = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => {
                port = it
                    .next()
                    .and_then(|v| v.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok());
            }
            "--executor" | "--runtime-url" => {
                it.next();
            }
            _ => out.push(a.clone()),
        }
    }
    out.extend(["--listen", "127.0.0.1:0", "--executor", "local"].map(String::from));
    (out, port)
}

async fn run(
    shared: Arc<dyn PodStore>,
    ns: String,
    name: String,
    pod: Pod,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    pid_slot: Arc<Mutex<Option<u32>>>,
) {
    let update = |f: &dyn Fn(&mut Pod)| update_pod(&*shared, &ns, &name, |p| f(p));
    update(&|p| {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(NODE.into());
        }
        set_condition(p, "PodScheduled", true);
    });
    let containers = pod.spec.map(|s| s.containers).unwrap_or_default();

    // An image that cannot be pulled keeps the pod Pending until it is deleted.
    if let Some(c) = containers
        .iter()
        .find(|c| c.image.as_ref().is_some_and(|i| shared.unpullable(i)))
    {
        let msg = format!(
            "failed to pull image \"{}\": not found",
            c.image.clone().unwrap_or_default()
        );
        update(&|p| {
            let state = ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ErrImagePull".into()),
                    message: Some(msg.clone()),
                }),
                ..Default::default()
            };
            let statuses = container_statuses(p, state, false);
            p.status
                .get_or_insert_with(Default::default)
                .container_statuses = Some(statuses);
        });
        let _ = ctl.recv().await;
        shared.remove_pod(&ns, &name);
        return;
    }

    let runnable = containers.iter().find_map(|c| {
        let image = c.image.as_ref()?;
        shared.image_binary(image).map(|bin| (c.clone(), bin))
    });
    let mut port_map = Vec::new();
    let mut child: Option<Child> = None;
    let mut probe_url = None;
    if let Some((c, bin)) = runnable {
        let (args, listen_port) = local_args(c.args.as_deref().unwrap_or_default());
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .envs(
                c.env
                    .iter()
                    .flatten()
                    .filter_map(|e| e.value.as_ref().map(|v| (e.name.clone(), v.clone()))),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        let mut proc_ = match cmd.spawn() {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("cannot start {}: {e}", bin.display());
                update(&|p| {
                    terminated(p, 128, "StartError");
                    p.status.get_or_insert_with(Default::default).message = Some(msg.clone());
                });
                let _ = ctl.recv().await;
                shared.remove_pod(&ns, &name);
                return;
            }
        };
        if let Ok(mut slot) = pid_slot.lock() {
            *slot = proc_.id();
        }
        let Some(stdout) = proc_.stdout.take() else {
            return;
        };
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::select! {
            r = tokio::time::timeout(START_TIMEOUT, async {
                while let Ok(Some(l)) = lines.next_line().await {
                    if let Some(a) = l.trim().strip_prefix(LISTENING) {
                        return a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
                    }
                }
                None
            }) => r.ok().flatten(),
            c = ctl.recv() => {
                finish(&*shared, &ns, &name, proc_, c, &pid_slot).await;
                return;
            }
        };
        let Some(actual) = listening else {
            let _ = proc_.start_kill();
            let code = proc_.wait().await.ok().and_then(|s| s.code()).unwrap_or(1);
            update(&|p| terminated(p, code.max(1), "Error"));
            if let Ok(mut slot) = pid_slot.lock() {
                *slot = None;
            }
            let _ = ctl.recv().await;
            shared.remove_pod(&ns, &name);
            return;
        };
        // Drain the rest of stdout so the process never blocks on a full pipe.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        shared.track(drain);
        let container_port = listen_port
            .or_else(|| {
                c.ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| u16::try_from(p.container_port).ok())
            })
            .unwrap_or(actual);
        port_map.push((container_port, actual));
        if let Some(h) = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()) {
            let target = match &h.port {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::String(s) => c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(s.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            };
            let host =
                target.and_then(|t| port_map.iter().find(|(cp, _)| *cp == t).map(|(_, hp)| *hp));
            probe_url = Some(format!(
                "http://127.0.0.1:{}{}",
                host.unwrap_or(0),
                h.path.clone().unwrap_or_else(|| "/".into())
            ));
        }
        child = Some(proc_);
    }

    let map_text = port_map
        .iter()
        .map(|(c, h)| format!("{c}={h}"))
        .collect::<Vec<_>>()
        .join(",");
    update(&|p| {
        if !map_text.is_empty() {
            p.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(PORT_MAP_ANNOTATION.into(), map_text.clone());
        }
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..Default::default()
        };
        let statuses = container_statuses(p, running, false);
        let status = p.status.get_or_insert_with(Default::default);
        status.pod_ip = Some("127.0.0.1".into());
        status.pod_ips = Some(vec![PodIP {
            ip: "127.0.0.1".into(),
        }]);
        status.host_ip = Some("127.0.0.1".into());
        status.start_time = Some(now());
        status.container_statuses = Some(statuses);
        set_phase(p, "Running");
        set_condition(p, "PodReadyToStartContainers", true);
        set_condition(p, "Initialized", true);
        set_condition(p, "ContainersReady", false);
        set_condition(p, "Ready", false);
    });

    let Some(mut proc_) = child else {
        // Nothing to run: ready at once, until deleted.
        update(&|p| mark_ready(p));
        let _ = ctl.recv().await;
        shared.remove_pod(&ns, &name);
        return;
    };

    // Readiness probe, as the kubelet runs it.
    if let Some(url) = probe_url {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        loop {
            tokio::select! {
                r = client.get(&url).send() => {
                    if r.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                s = proc_.wait() => {
                    exited(&*shared, &ns, &name, s, &pid_slot, &mut ctl).await;
                    return;
                }
                c = ctl.recv() => {
                    finish(&*shared, &ns, &name, proc_, c, &pid_slot).await;
                    return;
                }
            }
        }
    }
    update(&|p| mark_ready(p));

    tokio::select! {
        s = proc_.wait() => exited(&*shared, &ns, &name, s, &pid_slot, &mut ctl).await,
        c = ctl.recv() => finish(&*shared, &ns, &name, proc_, c, &pid_slot).await,
    }
}

fn mark_ready(p: &mut Pod) {
    let running = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.clone())
        .unwrap_or_default();
    let statuses = container_statuses(p, running, true);
    p.status
        .get_or_insert_with(Default::default)
        .container_statuses = Some(statuses);
    set_condition(p, "ContainersReady", true);
    set_condition(p, "Ready", true);
}

/// The process ended on its own: the pod is Failed (restartPolicy is not honoured) and stays
/// until deleted.
async fn exited(
    shared: &dyn PodStore,
    ns: &str,
    name: &str,
    status: std::io::Result<std::process::ExitStatus>,
    pid_slot: &Mutex<Option<u32>>,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
) {
    if let Ok(mut slot) = pid_slot.lock() {
        *slot = None;
    }
    let (code, reason) = match status {
        Ok(s) => match s.code() {
            Some(c) => (c, "Error"),
            None => (137, "Error"),
        },
        Err(_) => (1, "Error"),
    };
    update_pod(shared, ns, name, |p| {
        terminated(p, if code == 0 { 1 } else { code }, reason)
    });
    let _ = ctl.recv().await;
    shared.remove_pod(ns, name);
}

/// Deleted while running: SIGTERM, grace, SIGKILL, terminal phase, gone.
async fn finish(
    shared: &dyn PodStore,
    ns: &str,
    name: &str,
    mut proc_: Child,
    ctl: Option<Ctl>,
    pid_slot: &Mutex<Option<u32>>,
) {
    let grace = match ctl {
        Some(Ctl::Terminate(g)) => g,
        _ => Duration::ZERO,
    };
    if let Some(pid) = proc_.id() {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    let code = match tokio::time::timeout(grace, proc_.wait()).await {
        Ok(Ok(s)) => s.code().unwrap_or(143),
        _ => {
            let _ = proc_.start_kill();
            let _ = proc_.wait().await;
            137
        }
    };
    if let Ok(mut slot) = pid_slot.lock() {
        *slot = None;
    }
    if !matches!(ctl, Some(Ctl::Kill)) {
        update_pod(shared, ns, name, |p| terminated(p, code, "Completed"));
    }
    shared.remove_pod(ns, name);
}

#[cfg(test)]
mod tests {
    #[test]
    fn arguments_are_rewritten_for_this_machine() {
        let args: Vec<String> = [
            "--listen",
            "0.0.0.0:8085",
            "--container-id",
            "c1",
            "--executor",
            "http",
            "--runtime-url",
            "http://127.0.0.1:8080",
        ]
        .map(String::from)
        .to_vec();
        let (out, port) = super::local_args(&args);
        assert_eq!(port, Some(8085));
        assert_eq!(
            out,
            [
                "--container-id",
                "c1",
                "--listen",
                "127.0.0.1:0",
                "--executor",
                "local"
            ]
            .map(String::from)
            .to_vec()
        );
    }
}

//! Keeps the tables in step with the control plane.
//!
//! Opens `Subscribe`, applies the snapshot and then every delta in order. A gap in revisions or a
//! broken stream means resubscribing, which starts with a fresh snapshot, so the router never
//! misses a change. While disconnected the router keeps serving from the tables it has: the warm
//! path does not depend on the control plane being up.
//!
//! Every call presents the router's token, re-read from its file before every resubscription (a
//! rotated Secret). A control plane that refuses it leaves the router where a control plane
//! that is down does: serving from the tables it has, retrying with backoff, and saying why.
//!
//! Every applied revision is acknowledged (coalesced: only the latest is sent), so the control
//! plane can answer a management write once every router has it (read your writes).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use whisk_proto::controlplane::v1::{AcknowledgeRequest, SubscribeRequest};

use super::convert;
use super::credential::{Client, ControlPlaneToken, is_refusal};
use crate::domain::tables::Tables;

/// How long a router whose credential was refused waits before it tries again.
const REFUSED_BACKOFF: Duration = Duration::from_secs(2);

/// Runs forever (until the task is aborted).
pub async fn run(
    mut client: Client,
    tables: Arc<Tables>,
    router_id: String,
    token: Arc<ControlPlaneToken>,
) {
    let (applied, to_ack) = watch::channel(0u64);
    let acker = tokio::spawn(acknowledge(client.clone(), router_id.clone(), to_ack));
    let _stop_acker = AbortOnDrop(acker);
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    loop {
        if !std::mem::take(&mut first)
            && let Err(e) = token.reload()
        {
            tracing::warn!(error = %e, "keeping the control-plane token read before");
        }
        let refused = match subscribe_once(&mut client, &tables, &router_id, &applied).await {
            Ok(()) => {
                tracing::warn!("control-plane stream ended; resubscribing");
                false
            }
            // Refused for our credential: keep serving from the tables we have, keep trying (the
            // token file is read again first), and say what to fix.
            Err(SyncError::Status(status)) if is_refusal(&status) => {
                tracing::error!(
                    %status,
                    token_file = ?token.path(),
                    "the control plane refused this router's credential: check \
                     --controlplane-token-file (it must hold the control plane's router token); \
                     retrying, serving from the tables already held"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "control-plane subscription failed; retrying");
                false
            }
        };
        if refused {
            tokio::time::sleep(REFUSED_BACKOFF).await;
            continue;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if tables.is_ready() {
            backoff = backoff.min(Duration::from_millis(200));
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the latest applied revision whenever it changes.
async fn acknowledge(mut client: Client, router_id: String, mut applied: watch::Receiver<u64>) {
    while applied.changed().await.is_ok() {
        let revision = *applied.borrow_and_update();
        let req = AcknowledgeRequest {
            router_id: router_id.clone(),
            revision,
        };
        if let Err(status) = client.acknowledge(req).await {
            tracing::debug!(%status, revision, "acknowledge failed");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("subscribe: {0}")]
    Status(#[from] tonic::Status),
    #[error("revision gap: had {had}, got {got}")]
    Gap { had: u64, got: u64 },
}

async fn subscribe_once(
    client: &mut Client,
    tables: &Tables,
    router_id: &str,
    applied: &watch::Sender<u64>,
) -> Result<(), SyncError> {
    let mut stream = client
        .subscribe(SubscribeRequest {
            router_id: router_id.to_owned(),
        })
        .await?
        .into_inner();
    let mut last: Option<u64> = None;
    while let Some(update) = stream.message().await? {
        if !update.snapshot {
            match last {
                Some(had) if update.revision == had + 1 => {}
                Some(had) => {
                    return Err(SyncError::Gap {
                        had,
                        got: update.revision,
                    });
                }
                // A delta before any snapshot on this stream: ask again.
                None => {
                    return Err(SyncError::Gap {
                        had: 0,
                        got: update.revision,
                    });
                }
            }
        }
        last = Some(update.revision);
        let snapshot = update.snapshot;
        tables.apply(convert::update(update));
        applied.send_replace(tables.revision());
        if snapshot {
            let (ns, ids, actions, endpoints) = tables.counts();
            tracing::info!(
                revision = tables.revision(),
                ns,
                ids,
                actions,
                endpoints,
                "snapshot applied"
            );
        }
    }
    Ok(())
}

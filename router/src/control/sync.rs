//! Keeps the tables in step with the control plane.
//!
//! Opens `Subscribe`, applies the snapshot and then every delta in order. A gap in revisions or a
//! broken stream means resubscribing, which starts with a fresh snapshot, so the router never
//! misses a change. While disconnected the router keeps serving from the tables it has: the warm
//! path does not depend on the control plane being up.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use whisk_proto::controlplane::v1::{SubscribeRequest, control_plane_client::ControlPlaneClient};

use super::convert;
use crate::domain::tables::Tables;

/// Runs forever (until the task is aborted).
pub async fn run(mut client: ControlPlaneClient<Channel>, tables: Arc<Tables>, router_id: String) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match subscribe_once(&mut client, &tables, &router_id).await {
            Ok(()) => tracing::warn!("control-plane stream ended; resubscribing"),
            Err(e) => tracing::warn!(error = %e, "control-plane subscription failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if tables.is_ready() {
            backoff = backoff.min(Duration::from_millis(200));
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
    client: &mut ControlPlaneClient<Channel>,
    tables: &Tables,
    router_id: &str,
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

//! Reports activation records to a running control plane as fast as it takes them, the way
//! routers report theirs (`ReportActivation` without a container, the router token as bearer).
//! Used by `bench/mem/controlplane-rss.sh` to watch the control plane's memory under many
//! records; not part of the stack.
//!
//! `cargo run -p whisk-controlplane --example report_load -- URL TOKEN_FILE FIRST COUNT
//! [CONCURRENT] [NAMESPACES] [RESULT_BYTES]`: records `FIRST..FIRST+COUNT`, spread over
//! namespaces `load0..`, each with a result of about `RESULT_BYTES` (default 16, 1, 256).

use std::time::Instant;

use anyhow::{Context, Result};
use whisk_proto::controlplane::v1 as pb;
use whisk_proto::controlplane::v1::control_plane_client::ControlPlaneClient;

fn record(i: usize, namespaces: usize, result_bytes: usize) -> String {
    let start = 1_700_000_000_000i64 + i as i64;
    let namespace = format!("load{}", i % namespaces.max(1));
    serde_json::json!({
        "namespace": namespace, "name": "load", "subject": namespace,
        "activationId": format!("{i:032x}"), "start": start, "end": start + 3, "duration": 3,
        "response": { "statusCode": 0, "result": { "padding": "x".repeat(result_bytes) } },
        "logs": ["2026-01-01T00:00:00.000Z stdout: one line of the action's output"],
        "annotations": [{ "key": "path", "value": format!("{namespace}/load") }],
    })
    .to_string()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, token_file, first, count, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: report_load URL TOKEN_FILE FIRST COUNT [CONCURRENT] [NAMESPACES] [RESULT_BYTES]"
        );
    };
    let token = std::fs::read_to_string(token_file).context("the router token")?;
    let bearer = format!("Bearer {}", token.trim());
    let first: usize = first.parse()?;
    let count: usize = count.parse()?;
    let arg = |n: usize, default: usize| -> Result<usize> {
        Ok(rest
            .get(n)
            .map(|c| c.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (concurrent, namespaces, result_bytes) = (arg(0, 16)?, arg(1, 1)?, arg(2, 256)?);
    let channel = tonic::transport::Endpoint::from_shared(url.clone())?
        .connect()
        .await?;
    let client = ControlPlaneClient::new(channel);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrent {
        let mut client = client.clone();
        let bearer = bearer.clone();
        tasks.spawn(async move {
            for i in (first + worker..first + count).step_by(concurrent) {
                let mut request = tonic::Request::new(pb::ReportActivationRequest {
                    container_id: String::new(),
                    activation_json: record(i, namespaces, result_bytes),
                });
                request
                    .metadata_mut()
                    .insert("authorization", bearer.parse()?);
                client.report_activation(request).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    eprintln!("{count} records in {:?}", started.elapsed());
    Ok(())
}

//! Shared limits, the router's half: about once a second it reports to the control plane how
//! much of each active namespace's limits it used (admitted in the last minute, asked for since
//! the last report, in flight), and applies the shares the control plane answers with
//! (`domain::throttle::Share`). No request waits on this: admissions read the last shares.
//!
//! While the control plane cannot be reached, shares stay valid for as long as it said
//! (`valid_for_ms`) and then lapse: the router falls back to an equal part of each limit
//! (the limits divided by the number of routers it last heard of), OpenWhisk's rule.

use std::sync::Arc;
use std::time::Duration;

use whisk_proto::controlplane::v1 as pb;
use whisk_vocab::now_ms;

use super::credential::Client;
use crate::domain::tables::Tables;
use crate::domain::throttle::Share;

/// How often the router reports.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Reports and applies shares until the task is dropped.
pub async fn run(mut client: Client, tables: Arc<Tables>, router_id: String) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if !tables.is_ready() {
            continue;
        }
        let namespaces = tables
            .usage()
            .into_iter()
            .map(|(ns, u)| pb::NamespaceUsage {
                namespace: ns.to_string(),
                admitted_last_minute: u.admitted_last_minute,
                wanted: u.wanted,
                in_flight: u.in_flight,
            })
            .collect();
        let report = pb::UsageReport {
            router_id: router_id.clone(),
            namespaces,
        };
        match client.report_usage(report).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                let until_ms = now_ms() + answer.valid_for_ms;
                let shares: Vec<(String, Share)> = answer
                    .namespaces
                    .into_iter()
                    .map(|s| {
                        let share = Share {
                            invocations_per_minute: s.invocations_per_minute,
                            concurrent_invocations: s.concurrent_invocations,
                            until_ms,
                        };
                        (s.namespace, share)
                    })
                    .collect();
                tables.apply_shares(&shares);
                if failing {
                    tracing::info!("usage reports reach the control plane again");
                    failing = false;
                }
            }
            Err(status) => {
                if !failing {
                    tracing::warn!(%status, "cannot report usage; shares lapse into equal parts");
                    failing = true;
                }
            }
        }
    }
}

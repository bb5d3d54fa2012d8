//! Scenario m — many gateways (`whisk up --gateways 3`): what a second and third Envoy + router
//! pair cost or bring, and how exactly they share a namespace's limit.
//!
//! In one stack of three gateways on one control plane: a warm nodejs:20 action invoked at
//! concurrency 16 through the first gateway only, then with the 16 connections spread over the
//! three; then a namespace limited to `THROTTLE_LIMIT` invocations a minute, driven for one step
//! through all three gateways unevenly (connections 90/5/5), and its admissions compared with
//! its limit (the throttle's accuracy: admitted ÷ limit, which should be at most 1 and close to
//! it; the step is shorter than a minute, so every admission counts against the same minute).

use super::rig::guest;
use super::stack::{Up, whisk_up_with};
use super::{Options, ScenarioError, ScenarioReport, Tools, measure, warm_up};
use crate::loadgen::{Mode, Target};

const TITLE: &str = "Three gateways on one control plane";
const SETUP: &str = "whisk up --gateways 3 (prewarm nodejs:20=1): a warm nodejs:20 action, blocking invokes \
     at c=16 through gateway 1 only, then spread over the three gateways (connections round robin); then \
     a namespace limited to 300 invocations a minute driven at c=16 through the three gateways with its \
     connections 90/5/5, its admissions ÷ its limit reported as the throttle accuracy.";

/// The per-minute limit of the namespace whose throttle is measured.
const THROTTLE_LIMIT: u32 = 300;

pub async fn run(tools: &Tools, opts: &Options) -> ScenarioReport {
    let mut report = ScenarioReport::new('m', TITLE, SETUP);
    let up = match whisk_up_with(
        tools,
        opts,
        "m-gateways",
        "nodejs:20=1",
        &["--gateways", "3"],
    )
    .await
    {
        Ok(up) => up,
        Err(e) => return ScenarioReport::failed('m', TITLE, SETUP, e.to_string()),
    };
    let outcome = steps(&up, tools, opts, &mut report).await;
    up.stop().await;
    match outcome {
        Ok(()) => report,
        Err(e) => ScenarioReport::failed('m', TITLE, SETUP, e.to_string()),
    }
}

async fn steps(
    up: &Up,
    tools: &Tools,
    opts: &Options,
    report: &mut ScenarioReport,
) -> Result<(), ScenarioError> {
    let gateways = up.gateways();
    if gateways.len() != 3 {
        return Err(ScenarioError::Unexpected(format!(
            "whisk up announced {} gateways",
            gateways.len()
        )));
    }
    let name = "bench-gateways";
    up.create_action(name).await?;
    let status = up.invoke(name).await?;
    if status != 200 {
        return Err(ScenarioError::Unexpected(format!(
            "the first invoke of {name} answered {status}"
        )));
    }
    let components = up.components();
    let one = Target::post_json(up.api, &Up::invoke_path(name), Some(&guest()), "{}");
    warm_up(&one, opts.warmup()).await?;
    let c16 = Mode::Closed { concurrency: 16 };
    let mut step = measure(&one, c16, opts.step(), &components).await?;
    step.result.label = "one gateway".into();
    report.steps.push(step);
    let three = one.clone().spread_over(gateways.clone());
    warm_up(&three, opts.warmup()).await?;
    let mut step = measure(&three, c16, opts.step(), &components).await?;
    step.result.label = "three gateways".into();
    report.steps.push(step);

    // The throttle's accuracy across gateways under uneven load.
    let cred = up
        .admin(&tools.whisk, &["user", "create", "metered"])
        .await?;
    let cred = cred.trim().to_owned();
    up.admin(
        &tools.whisk,
        &[
            "limits",
            "set",
            "metered",
            "--invocations-per-minute",
            &THROTTLE_LIMIT.to_string(),
            "--concurrent-invocations",
            "100",
        ],
    )
    .await?;
    let metered = Target::post_json(up.api, &Up::invoke_path(name), Some(&cred), "{}");
    let create = up
        .http
        .put(format!("http://{}/api/v1/namespaces/_/actions/{name}", up.api))
        .basic_auth(
            cred.split(':').next().unwrap_or_default(),
            cred.split_once(':').map(|(_, k)| k),
        )
        .json(&serde_json::json!({"exec": {"kind": "nodejs:20", "code": "function main(p){return {ok:true}}"}}))
        .send()
        .await?;
    if !create.status().is_success() {
        return Err(ScenarioError::Unexpected(format!(
            "creating the metered action: {}",
            create.status()
        )));
    }
    // 90/5/5 by connections: gateway 1 listed eighteen times, the others once.
    let mut uneven = vec![gateways[0]; 18];
    uneven.extend([gateways[1], gateways[2]]);
    let metered = metered.spread_over(uneven);
    let mut step = measure(&metered, c16, opts.step(), &components).await?;
    step.result.label = "metered 90/5/5".into();
    let admitted = step.result.statuses.get(&200).copied().unwrap_or(0);
    report.set_extra(
        "throttle_limit_per_minute",
        serde_json::json!(THROTTLE_LIMIT),
    );
    report.set_extra("throttle_admitted", serde_json::json!(admitted));
    report.set_extra(
        "throttle_accuracy",
        serde_json::json!(admitted as f64 / f64::from(THROTTLE_LIMIT)),
    );
    report.steps.push(step);
    Ok(())
}

//! nodejs actions through the real proxy binary: results, every error class, logs, limits,
//! answer shapes and the records reported to the control plane.

mod common;

use common::*;
use serde_json::{Value, json};

const GREET: &str = r#"function main(params) { return { greeting: "Hello " + params.name }; }"#;

#[tokio::test(flavor = "multi_thread")]
async fn greet_with_a_parameter() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", GREET)).await;
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({"name": "Ada"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.assert_invoke_headers(&inv.activation_id);
    let rec = &reply.body;
    assert_eq!(rec["response"]["result"], json!({"greeting": "Hello Ada"}));
    assert_eq!(rec["response"]["status"], "success");
    assert_eq!(rec["response"]["success"], true);
    assert!(rec["response"].get("statusCode").is_none());
    assert!(rec["response"]["size"].as_u64().unwrap() > 0);
    assert_eq!(rec["activationId"], inv.activation_id.as_str());
    assert_eq!(rec["namespace"], "caller");
    assert_eq!(rec["subject"], "caller-subject");
    assert_eq!(rec["name"], "hello");
    assert_eq!(rec["version"], "0.0.1");
    assert_eq!(rec["publish"], false);
    let (start, end) = (rec["start"].as_u64().unwrap(), rec["end"].as_u64().unwrap());
    assert_eq!(rec["duration"].as_u64().unwrap(), end - start);
    assert_eq!(annotation(rec, "path"), Some(json!("guest/hello")));
    assert_eq!(annotation(rec, "kind"), Some(json!("nodejs:20")));
    assert_eq!(annotation(rec, "timeout"), Some(json!(false)));
    assert_eq!(
        annotation(rec, "limits"),
        Some(json!({"timeout": 10000, "memory": 256, "logs": 10, "concurrency": 1}))
    );
    assert!(annotation(rec, "waitTime").unwrap().as_u64().is_some());
    assert!(
        annotation(rec, "initTime").is_some(),
        "first activation has initTime"
    );

    // The stored form went to the control plane, with statusCode.
    let (container, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(container, "c-test");
    assert_eq!(stored["response"]["statusCode"], 0);
    assert_eq!(
        stored["response"]["result"],
        json!({"greeting": "Hello Ada"})
    );

    // The second activation has no initTime; result=true gives the bare result.
    let mut inv2 = Invoke::blocking("guest/hello");
    inv2.result = true;
    let reply = proxy.invoke(&inv2, json!({"name": "Bob"})).await;
    assert_eq!(reply.status, 200);
    reply.assert_invoke_headers(&inv2.activation_id);
    assert_eq!(reply.body, json!({"greeting": "Hello Bob"}));
    let (_, stored) = cp.record(&inv2.activation_id).await;
    assert!(annotation(&stored, "initTime").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn application_error_is_502() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return { error: "no good", extra: 1 }; }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 502);
    reply.assert_invoke_headers(&inv.activation_id);
    assert_eq!(reply.body["response"]["status"], "application error");
    assert_eq!(reply.body["response"]["success"], false);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"error": "no good"})
    );
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(stored["response"]["statusCode"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn thrown_error_rejected_promise_and_non_dictionary_are_developer_errors() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        async function main(p) {
          if (p.mode === "throw") throw new Error("boom");
          if (p.mode === "reject") return Promise.reject(new Error("later"));
          if (p.mode === "number") return 42;
          return { ok: true };
        }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    for (mode, text) in [
        ("throw", "An error has occurred: Error: boom"),
        ("reject", "An error has occurred: Error: later"),
        ("number", "The action did not return a dictionary."),
    ] {
        let inv = Invoke::blocking("guest/hello");
        let reply = proxy.invoke(&inv, json!({"mode": mode})).await;
        assert_eq!(reply.status, 502, "{mode}: {}", reply.body);
        assert_eq!(reply.body["response"]["status"], "action developer error");
        assert_eq!(reply.body["response"]["result"], json!({"error": text}));
        let (_, stored) = cp.record(&inv.activation_id).await;
        assert_eq!(stored["response"]["statusCode"], 2);
    }
    // The launcher survived all of it.
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeping_past_the_limit_times_out_and_the_next_call_works() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main(p) {
          if (p.hang) return new Promise(() => {});
          return { pid: process.pid };
        }"#;
    let mut act = action("hello", "nodejs:20", code);
    act["limits"]["timeout"] = json!(500);
    let proxy = ready_proxy(&cp, "nodejs:20", act).await;
    let before = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    let old_pid = before.body["response"]["result"]["pid"].as_u64().unwrap();

    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({"hang": true})).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"error": "The action exceeded its time limits of 500 milliseconds."})
    );
    assert_eq!(annotation(&reply.body, "timeout"), Some(json!(true)));
    assert!(reply.body["duration"].as_u64().unwrap() >= 500);

    let after = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(after.status, 200, "{}", after.body);
    let new_pid = after.body["response"]["result"]["pid"].as_u64().unwrap();
    assert_ne!(old_pid, new_pid, "the runtime process was replaced");
}

#[tokio::test(flavor = "multi_thread")]
async fn array_result_is_returned_bare() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return [1, "two", {three: 3}]; }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 200);
    reply.assert_invoke_headers(&inv.activation_id);
    assert_eq!(reply.body, json!([1, "two", {"three": 3}]));
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(
        stored["response"]["result"],
        json!([1, "two", {"three": 3}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_logs_are_captured_per_activation() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main(p) {
          console.log("hello from stdout " + p.n);
          console.error("hello from stderr " + p.n);
          return {};
        }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    for n in 0..2 {
        let reply = proxy
            .invoke(&Invoke::blocking("guest/hello"), json!({"n": n}))
            .await;
        assert_eq!(reply.status, 200);
        let logs: Vec<String> = reply.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(logs.len(), 2, "{logs:?}");
        let out = logs.iter().find(|l| l.contains(" stdout: ")).unwrap();
        let err = logs.iter().find(|l| l.contains(" stderr: ")).unwrap();
        assert!(
            out.ends_with(&format!("Z stdout: hello from stdout {n}")),
            "{out}"
        );
        assert!(
            err.ends_with(&format!("Z stderr: hello from stderr {n}")),
            "{err}"
        );
        // "2024-01-01T00:00:00.123456789Z stdout: ..."
        let ts = out.split(' ').next().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(
            logs.iter()
                .all(|l| !l.contains("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn megabytes_of_output_are_truncated_at_the_log_limit() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main() {
          const line = "x".repeat(1000);
          for (let i = 0; i < 3000; i++) console.log(line);
          return { done: true };
        }"#;
    let mut act = action("hello", "nodejs:20", code);
    act["limits"]["logs"] = json!(1);
    let proxy = ready_proxy(&cp, "nodejs:20", act).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body["response"]);
    let logs = reply.body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1048 + 1);
    assert!(
        logs.last().unwrap().as_str().unwrap().ends_with(
            "Z stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        )
    );
    // The next activation starts with fresh logs.
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_result_is_an_application_error() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main() { return { big: "y".repeat(1100000) }; }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["response"]["status"], "application error");
    let err = reply.body["response"]["result"]["error"].as_str().unwrap();
    let size = 1_100_000 + r#"{"big":""}"#.len();
    assert!(
        err.starts_with(&format!(
            "The action produced a response that exceeded the allowed length: {size} > 1048576 bytes. The truncated response was: {{\"big\":\"yyy"
        )),
        "{}",
        &err[..200]
    );
    assert_eq!(reply.body["response"]["size"], size);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_mid_run_then_recovery() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main(p) {
          if (p.exit) { console.log("bye"); process.exit(3); }
          return { pid: process.pid };
        }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let inv = Invoke::blocking("guest/hello");
    let reply = proxy.invoke(&inv, json!({"exit": true})).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"error": "The action did not produce a valid response and exited unexpectedly."})
    );
    assert_eq!(reply.body["response"]["status"], "action developer error");
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["response"]["result"]["pid"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn non_blocking_answers_202_at_once() {
    let cp = ControlPlaneStub::start().await;
    let code =
        r#"function main() { return new Promise(r => setTimeout(() => r({late: true}), 800)); }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let inv = Invoke::non_blocking("guest/hello");
    let started = std::time::Instant::now();
    let reply = proxy.invoke(&inv, json!({})).await;
    assert!(started.elapsed() < std::time::Duration::from_millis(700));
    assert_eq!(reply.status, 202);
    reply.assert_invoke_headers(&inv.activation_id);
    assert_eq!(reply.body, json!({"activationId": inv.activation_id}));
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(stored["response"]["result"], json!({"late": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_wait_expiry_answers_202_and_the_record_comes_later() {
    let cp = ControlPlaneStub::start().await;
    let code =
        r#"function main() { return new Promise(r => setTimeout(() => r({slow: true}), 1500)); }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let mut inv = Invoke::blocking("guest/hello");
    inv.deadline_ms = now_ms() + 300;
    let reply = proxy.invoke(&inv, json!({})).await;
    assert_eq!(reply.status, 202);
    reply.assert_invoke_headers(&inv.activation_id);
    assert_eq!(reply.body, json!({"activationId": inv.activation_id}));
    assert!(
        cp.records().is_empty(),
        "still running when the wait expired"
    );
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(stored["response"]["statusCode"], 0);
    assert_eq!(stored["response"]["result"], json!({"slow": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn zip_action_with_package_json() {
    let cp = ControlPlaneStub::start().await;
    let code = zip_base64(&[
        ("package.json", r#"{"name":"z","main":"lib/entry.js"}"#),
        (
            "lib/entry.js",
            r#"const h = require("./helper"); exports.main = (p) => ({ msg: h.shout(p.word) });"#,
        ),
        (
            "lib/helper.js",
            r#"exports.shout = (w) => String(w).toUpperCase() + "!";"#,
        ),
    ]);
    let mut act = action("zipped", "nodejs:20", &code);
    act["exec"]["binary"] = json!(true);
    let proxy = ready_proxy(&cp, "nodejs:20", act).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/zipped"), json!({"word": "hey"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["response"]["result"], json!({"msg": "HEY!"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn default_params_merged_and_final_params_protected() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"function main(p) { return { got: p }; }"#;
    let mut act = action("hello", "nodejs:20", code);
    act["parameters"] = json!([
        {"key": "name", "value": "World"},
        {"key": "fixed", "value": 1},
        {"key": "secret", "value": "s3", "init": true},
    ]);
    let proxy = ready_proxy(&cp, "nodejs:20", act.clone()).await;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let inv = Invoke::blocking("guest/hello");
    accepted.push(inv.activation_id.clone());
    let reply = proxy.invoke(&inv, json!({"name": "Ada"})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["response"]["result"]["got"],
        json!({"name": "Ada", "fixed": 1})
    );
    // An array payload is passed as it is.
    let inv = Invoke::blocking("guest/hello");
    accepted.push(inv.activation_id.clone());
    let reply = proxy.invoke(&inv, json!([1, 2])).await;
    assert_eq!(reply.body["response"]["result"]["got"], json!([1, 2]));
    // __ow_* keys are refused.
    let inv = Invoke::blocking("guest/hello");
    refused.push(inv.activation_id.clone());
    let reply = proxy.invoke(&inv, json!({"__ow_method": "get"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        json!({"error": "Request defines parameters that are not allowed (e.g., reserved properties).",
               "code": format!("tid-{}", inv.activation_id)})
    );

    // With final: redefining a defined parameter is refused.
    let mut fin = act;
    fin["annotations"] = json!([{"key": "final", "value": true}]);
    let proxy = ready_proxy(&cp, "nodejs:20", fin).await;
    let inv = Invoke::blocking("guest/hello");
    refused.push(inv.activation_id.clone());
    let reply = proxy.invoke(&inv, json!({"fixed": 2})).await;
    assert_eq!(reply.status, 400);
    reply.assert_invoke_headers(&inv.activation_id);
    assert_eq!(
        reply.body["error"],
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    );
    let inv = Invoke::blocking("guest/hello");
    accepted.push(inv.activation_id.clone());
    let reply = proxy.invoke(&inv, json!({"other": 2})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["response"]["result"]["got"],
        json!({"name": "World", "fixed": 1, "other": 2})
    );
    // Nothing refused reached the action: only the accepted activations were reported.
    for id in &accepted {
        cp.record(id).await;
    }
    let ids: Vec<Value> = cp
        .records()
        .iter()
        .map(|r| r["activationId"].clone())
        .collect();
    assert_eq!(ids.len(), accepted.len());
    assert!(refused.iter().all(|id| !ids.contains(&json!(id))));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_environment_api_key_and_traceparent() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main() {
          const e = process.env;
          return { id: e.__OW_ACTIVATION_ID, ns: e.__OW_NAMESPACE, name: e.__OW_ACTION_NAME,
                   key: e.__OW_API_KEY || null, deadline: e.__OW_DEADLINE, tx: e.__OW_TRANSACTION_ID,
                   trace: e.TRACEPARENT || null, host: e.__OW_API_HOST || null, secret: e.secret || null };
        }"#;
    let mut act = action("hello", "nodejs:20", code);
    act["parameters"] = json!([{"key": "secret", "value": "s3", "init": true}]);
    let auth = "Basic dXVpZDprZXk="; // uuid:key
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    // Without provide-api-key: no key.
    let proxy = ready_proxy(&cp, "nodejs:20", act.clone()).await;
    let mut inv = Invoke::blocking("guest/hello");
    inv.extra = vec![("authorization".into(), auth.into())];
    let reply = proxy.invoke(&inv, json!({})).await;
    let r = &reply.body["response"]["result"];
    assert_eq!(r["id"], inv.activation_id.as_str());
    assert_eq!(r["ns"], "caller");
    assert_eq!(r["name"], "/guest/hello");
    assert_eq!(r["key"], Value::Null);
    assert_eq!(r["trace"], Value::Null);
    assert_eq!(r["secret"], "s3");
    assert_eq!(r["tx"], format!("tid-{}", inv.activation_id));
    let deadline: u64 = r["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline, reply.body["start"].as_u64().unwrap() + 10_000);

    // With provide-api-key and a traceparent.
    act["annotations"] = json!([{"key": "provide-api-key", "value": true}]);
    let proxy = ProxyProcess::spawn(
        &[
            "--kind",
            "nodejs:20",
            "--controlplane",
            &cp.url(),
            "--api-host",
            "https://whisk.example",
        ],
        &[],
    );
    assert_eq!(proxy.init(act).await.0, 200);
    let mut inv = Invoke::blocking("guest/hello");
    inv.extra = vec![
        ("authorization".into(), auth.into()),
        ("traceparent".into(), tp.into()),
    ];
    let reply = proxy.invoke(&inv, json!({})).await;
    let r = &reply.body["response"]["result"];
    assert_eq!(r["key"], "uuid:key");
    assert_eq!(r["trace"], tp);
    assert_eq!(r["host"], "https://whisk.example");
    // The next run without them does not leak the previous values.
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    let r = &reply.body["response"]["result"];
    assert_eq!(r["key"], Value::Null);
    assert_eq!(r["trace"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn init_failures_second_init_and_health() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::stem("nodejs:20", &cp);
    let h = proxy.health().await;
    assert_eq!(h["initialized"], false);
    assert_eq!(h["kind"], "nodejs:20");
    assert_eq!(h["action"], Value::Null);
    // Invoke before init.
    let reply = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({}))
        .await;
    assert_eq!(reply.status, 503);

    let (status, body) = proxy
        .init(action("hello", "nodejs:20", "function main( {"))
        .await;
    assert_eq!(status, 502);
    let err = body["error"].as_str().unwrap();
    assert!(
        err.starts_with("Initialization has failed due to: SyntaxError"),
        "{err}"
    );

    let (status, body) = proxy
        .init(action("hello", "nodejs:20", "const x = 1;"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("'main' is not a function")
    );

    let mut hang = action("hello", "nodejs:20", "while (true) {}");
    hang["limits"]["timeout"] = json!(500);
    let (status, body) = proxy.init(hang).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"],
        json!("The action exceeded its time limits of 500 milliseconds during initialization.")
    );

    let (status, body) = proxy.init(action("hello", "nodejs:20", GREET)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ok": true}));
    let (status, body) = proxy.init(action("hello", "nodejs:20", GREET)).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": "Cannot initialize the action more than once."})
    );

    let h = proxy.health().await;
    assert_eq!(
        h,
        json!({"ready": true, "initialized": true, "in_flight": 0, "queued": 0, "capacity": 1,
               "kind": "nodejs:20", "action": "guest/hello"})
    );
}

/// What an action prints while its code loads goes with its init failure (Contract 3's
/// `502 {"error", "logs"}`), in OpenWhisk's log format, so the activation record can show it.
#[tokio::test(flavor = "multi_thread")]
async fn init_failure_answers_the_logs_printed_during_init() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::stem("nodejs:20", &cp);
    let code = r#"console.log("booting"); console.error("about to fail"); eval("syntax error here");
function main() { return {}; }"#;
    let (status, body) = proxy.init(action("boot", "nodejs:20", code)).await;
    assert_eq!(status, 502, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(
        err.starts_with("Initialization has failed due to: SyntaxError"),
        "{err}"
    );
    let logs = log_lines(&body);
    assert!(
        logs.iter().any(|l| l.ends_with("stdout: booting")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.ends_with("stderr: about to fail")),
        "{logs:?}"
    );
    // OpenWhisk's format: an ISO-8601 UTC timestamp first.
    assert!(
        logs[0].starts_with("20") && logs[0].contains('Z'),
        "{logs:?}"
    );
}

/// fd 3 is the launcher's reply channel, and action code can write to it. A stray line spoils at
/// most the run that wrote it: the next runs get their own results, not the one before's.
#[tokio::test(flavor = "multi_thread")]
async fn a_stray_write_to_the_reply_channel_does_not_shift_later_results() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        function main(p) {
          if (p.stray) require("fs").writeSync(3, JSON.stringify({ stray: true }) + "\n");
          return { n: p.n };
        }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let mut inv = Invoke::blocking("guest/hello");
    inv.result = true;
    let reply = proxy.invoke(&inv, json!({"n": 0, "stray": true})).await;
    assert_eq!(
        reply.body,
        json!({"stray": true}),
        "the writer gets its own stray line"
    );
    for n in 1..4 {
        let mut inv = Invoke::blocking("guest/hello");
        inv.result = true;
        let reply = proxy.invoke(&inv, json!({ "n": n })).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, json!({ "n": n }), "run {n} gets its own result");
    }
}

/// What the code prints while it initialises goes with the first activation's logs, before what
/// the run prints, as in OpenWhisk; later activations have only their own.
#[tokio::test(flavor = "multi_thread")]
async fn output_of_a_successful_init_is_in_the_first_activations_logs() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
        console.log("loading");
        function main(p) { console.log("running " + p.n); return {}; }"#;
    let proxy = ready_proxy(&cp, "nodejs:20", action("hello", "nodejs:20", code)).await;
    let first = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({"n": 1}))
        .await;
    let logs = log_lines(&first.body);
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].ends_with("stdout: loading"), "{logs:?}");
    assert!(logs[1].ends_with("stdout: running 1"), "{logs:?}");
    let second = proxy
        .invoke(&Invoke::blocking("guest/hello"), json!({"n": 2}))
        .await;
    let logs = log_lines(&second.body);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].ends_with("stdout: running 2"), "{logs:?}");
}

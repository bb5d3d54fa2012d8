//! python actions through the real proxy binary.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn python_action_greets_logs_and_fails_like_openwhisk() {
    let cp = ControlPlaneStub::start().await;
    let code = r#"
import os, sys

def main(args):
    print("stdout line", args.get("name"))
    print("stderr line", file=sys.stderr)
    if args.get("fail"):
        raise ValueError("bad input")
    if args.get("app"):
        return {"error": "app says no"}
    if args.get("exit"):
        os._exit(1)
    return {"greeting": "Hello " + args.get("name", "stranger"), "id": os.environ["__OW_ACTIVATION_ID"]}
"#;
    let proxy = ready_proxy(&cp, "python:3", action("py", "python:3", code)).await;

    let inv = Invoke::blocking("guest/py");
    let reply = proxy.invoke(&inv, json!({"name": "Ada"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"greeting": "Hello Ada", "id": inv.activation_id})
    );
    let logs = reply.body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().ends_with("Z stdout: stdout line Ada"))
    );
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().ends_with("Z stderr: stderr line"))
    );
    let (_, stored) = cp.record(&inv.activation_id).await;
    assert_eq!(stored["response"]["statusCode"], 0);
    assert_eq!(annotation(&stored, "kind"), Some(json!("python:3")));

    let reply = proxy
        .invoke(&Invoke::blocking("guest/py"), json!({"fail": true}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["response"]["status"], "action developer error");
    assert_eq!(
        reply.body["response"]["result"]["error"],
        "An error has occurred: ValueError('bad input')"
    );
    assert!(
        reply.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("stderr: Traceback"))
    );

    let reply = proxy
        .invoke(&Invoke::blocking("guest/py"), json!({"app": true}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body["response"]["status"], "application error");

    let reply = proxy
        .invoke(&Invoke::blocking("guest/py"), json!({"exit": true}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body["response"]["result"]["error"],
        "The action did not produce a valid response and exited unexpectedly."
    );
    let reply = proxy
        .invoke(&Invoke::blocking("guest/py"), json!({"name": "again"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_zip_action() {
    let cp = ControlPlaneStub::start().await;
    let code = zip_base64(&[
        (
            "__main__.py",
            "from helper import double\n\ndef main(args):\n    return {\"n\": double(args[\"n\"])}\n",
        ),
        ("helper.py", "def double(n):\n    return n * 2\n"),
    ]);
    let mut act = action("pyzip", "python:3", &code);
    act["exec"]["binary"] = json!(true);
    let proxy = ready_proxy(&cp, "python:3", act).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/pyzip"), json!({"n": 21}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["response"]["result"], json!({"n": 42}));
}

/// A zip with its dependencies in a `virtualenv` folder (as `virtualenv virtualenv && pip install`
/// leaves them), as OpenWhisk's Python runtime accepts: the action imports them.
#[tokio::test(flavor = "multi_thread")]
async fn python_zip_with_a_virtualenv() {
    let cp = ControlPlaneStub::start().await;
    let code = zip_base64(&[
        (
            "__main__.py",
            "import vendored\n\ndef main(args):\n    return {\"from\": vendored.NAME}\n",
        ),
        (
            "virtualenv/lib/python3.11/site-packages/vendored/__init__.py",
            "NAME = 'virtualenv'\n",
        ),
        ("virtualenv/bin/activate_this.py", "# unused here\n"),
    ]);
    let mut act = action("pyvenv", "python:3", &code);
    act["exec"]["binary"] = json!(true);
    let proxy = ready_proxy(&cp, "python:3", act).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/pyvenv"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"from": "virtualenv"})
    );
}

/// A python action that prints and then raises at import: its init failure carries the printed
/// line and the traceback.
#[tokio::test(flavor = "multi_thread")]
async fn init_failure_answers_the_print_and_the_traceback() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ProxyProcess::stem("python:3", &cp);
    let code =
        "print('importing')\nraise ValueError('bad config')\n\ndef main(args):\n    return {}\n";
    let (status, body) = proxy.init(action("boot", "python:3", code)).await;
    assert_eq!(status, 502, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(
        err.starts_with("Initialization has failed due to: ValueError"),
        "{err}"
    );
    let logs = log_lines(&body);
    assert!(
        logs.iter().any(|l| l.ends_with("stdout: importing")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("stderr:") && l.contains("ValueError: bad config")),
        "{logs:?}"
    );
}

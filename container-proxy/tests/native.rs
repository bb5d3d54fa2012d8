//! Native (`blackbox`) actions: any executable speaking the launcher protocol.

mod common;

use common::*;
use serde_json::json;

const SCRIPT: &str = r#"#!/bin/sh
# Reads one /run message per line; replies on fd 3.
while IFS= read -r line; do
  echo "native got a message"
  case "$line" in
    *garbage*) echo "this is not json" >&3 ;;
    *die*) exit 7 ;;
    *) echo "{\"native\":true,\"id\":\"$__OW_ACTIVATION_ID\"}" >&3 ;;
  esac
  echo "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
  echo "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" >&2
done
"#;

#[tokio::test(flavor = "multi_thread")]
async fn native_script_results_garbage_and_death() {
    let cp = ControlPlaneStub::start().await;
    let proxy = ready_proxy(&cp, "blackbox", action("native", "blackbox", SCRIPT)).await;

    let reply = proxy
        .invoke(&Invoke::blocking("guest/native"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["response"]["result"]["native"], true);
    assert!(
        reply.body["logs"][0]
            .as_str()
            .unwrap()
            .ends_with("Z stdout: native got a message")
    );

    let reply = proxy
        .invoke(
            &Invoke::blocking("guest/native"),
            json!({"mode": "garbage"}),
        )
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body["response"]["result"],
        json!({"error": "The action did not produce a valid JSON or JSON Array response: this is not json"})
    );

    let reply = proxy
        .invoke(&Invoke::blocking("guest/native"), json!({"mode": "die"}))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body["response"]["result"]["error"],
        "The action did not produce a valid response and exited unexpectedly."
    );
    let reply = proxy
        .invoke(&Invoke::blocking("guest/native"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn native_zip_with_exec() {
    let cp = ControlPlaneStub::start().await;
    let code = zip_base64(&[("exec", SCRIPT)]);
    let mut act = action("native", "blackbox", &code);
    act["exec"]["binary"] = json!(true);
    let proxy = ready_proxy(&cp, "blackbox", act).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/native"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["response"]["result"]["native"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn unstartable_replacement_is_reported_unusable() {
    let cp = ControlPlaneStub::start().await;
    // The script deletes itself and dies: its replacement cannot start.
    let script = "#!/bin/sh\nread -r line\nrm -f \"$0\"\nexit 1\n";
    let proxy = ready_proxy(&cp, "blackbox", action("native", "blackbox", script)).await;
    let reply = proxy
        .invoke(&Invoke::blocking("guest/native"), json!({}))
        .await;
    assert_eq!(reply.status, 502);
    let (container, reason) = cp.unusable().await;
    assert_eq!(container, "c-test");
    assert!(reason.contains("cannot"), "{reason}");
}

//! The router's warm path through real Envoy: routing, rejections, throttling, slot release,
//! cold starts, forged headers, key revocation and failing closed.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use whisk_proto::controlplane::v1 as pb;

async fn json(r: reqwest::Response) -> serde_json::Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn routes_two_actions_to_their_own_containers() {
    let b = Bench::start().await;
    let (ua, ub) = (Upstream::start("a").await, Upstream::start("b").await);
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1), action("guest/b", 1)],
        endpoints_upsert: vec![
            endpoint("ca", "guest/a", ua.addr, 1),
            endpoint("cb", "guest/b", ub.addr, 1),
        ],
        ..Default::default()
    })
    .await;
    eventually("routed", Duration::from_secs(5), || async {
        b.invoke("a").await.status() == 200
    })
    .await;
    for (name, want) in [("a", "a"), ("b", "b"), ("a", "a")] {
        let r = b.invoke(name).await;
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-openwhisk-activation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let v = json(r).await;
        assert_eq!(v["upstream"], want);
        let h = &v["headers"];
        assert_eq!(h["x-whisk-action"], format!("guest/{name}"));
        assert_eq!(h["x-whisk-namespace"], "guest");
        assert_eq!(h["x-whisk-blocking"], "true");
        assert_eq!(h["x-whisk-result"], "false");
        assert_eq!(h["x-whisk-action-revision"], "1");
        assert_eq!(h["x-whisk-activation-id"], id.as_str());
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(
            h["x-whisk-deadline"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
    }
}

#[tokio::test]
async fn sidecar_flavour_routes_over_a_unix_socket() {
    let b = Bench::start_sidecar().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    let r = b.invoke("a").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-openwhisk-activation-id"));
    assert_eq!(json(r).await["upstream"], "a");
    let r = b
        .http
        .post(b.invoke_url("a"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn rejections_have_openwhisk_bodies_and_headers() {
    let b = Bench::start().await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/a", 1), action("other/private", 1)],
        ..Default::default()
    })
    .await;
    let post = |path: &str, auth: Option<String>| {
        let mut r = b.http.post(b.url(path)).body("{}");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // 401 without credentials.
    let r = post("/api/v1/namespaces/_/actions/a", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"OpenWhisk secure realm\""
    );
    let v = json(r).await;
    assert_eq!(
        v["error"],
        "The resource requires authentication, which was not supplied with the request"
    );
    assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()));
    // 401 with a wrong key, and with garbage.
    let wrong = basic(GUEST_UUID, &GUEST_KEY.replace('1', "7"));
    for auth in [
        wrong,
        "Basic %%%".into(),
        format!("Basic {}", "x".repeat(4000)),
    ] {
        let r = post("/api/v1/namespaces/_/actions/a", Some(auth))
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            json(r).await["error"],
            "The supplied authentication is invalid"
        );
    }
    // 403 in another namespace.
    let r = post(
        "/api/v1/namespaces/other/actions/private",
        Some(guest_auth()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        json(r).await["error"],
        "The supplied authentication is not authorized to access 'other/private'."
    );
    // 404 for an unknown action in one's own namespace.
    let r = post("/api/v1/namespaces/guest/actions/nope", Some(guest_auth()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        json(r).await["error"],
        "The requested resource does not exist."
    );
    // 400 for a bad timeout and for an illegal name.
    let r = post(
        "/api/v1/namespaces/_/actions/a?blocking=true&timeout=70000",
        Some(guest_auth()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        json(r).await["error"],
        "Timeout must be number of milliseconds up to 60000."
    );
    let r = post("/api/v1/namespaces/_/actions/a%2F..", Some(guest_auth()))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = json(r).await;
    assert_eq!(
        body["error"],
        "The name of the entity contains illegal characters."
    );
    assert!(body["code"].is_string(), "{body}");
    // 413 decided from content-length (the namespace allows 1024 bytes).
    let r = b
        .http
        .post(b.url("/api/v1/namespaces/_/actions/a"))
        .header("authorization", guest_auth())
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        json(r).await["error"],
        "Request larger than allowed: 4096 > 1024 bytes."
    );
    // Anything else: OpenWhisk's 404 from Envoy.
    let r = b.http.get(b.url("/nothing/here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn rate_limit_answers_429_at_exactly_the_limit() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.apply(pb::TableUpdate {
        namespaces_upsert: vec![namespace("guest", 5, 100)],
        actions_upsert: vec![action("guest/a", 50)],
        endpoints_upsert: vec![endpoint("ca", "guest/a", u.addr, 50)],
        ..Default::default()
    })
    .await;
    // Readiness probes above charged the old (1000/min) limiter; the new limit starts afresh.
    let calls = (0..20).map(|_| b.invoke("a"));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.status() == 200).count();
    let throttled: Vec<_> = results.into_iter().filter(|r| r.status() == 429).collect();
    assert_eq!(ok, 5, "exactly the allowance passes");
    assert_eq!(throttled.len(), 15);
    for r in throttled {
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The limit is a sliding minute counted in 100 ms buckets: a burst leaves it 60.1 s after
        // it came, so a retry after 61 s passes.
        assert!((1..=61).contains(&retry), "retry-after {retry}");
        let text = json(r).await["error"].as_str().unwrap().to_owned();
        assert!(
            text.starts_with("Too many requests in the last minute (count: ")
                && text.ends_with(", allowed: 5)."),
            "{text}"
        );
    }
}

#[tokio::test]
async fn concurrency_limit_answers_429_with_openwhisk_text() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.apply(pb::TableUpdate {
        namespaces_upsert: vec![namespace("guest", 1000, 3)],
        actions_upsert: vec![action("guest/a", 50)],
        endpoints_upsert: vec![endpoint("ca", "guest/a", u.addr, 50)],
        ..Default::default()
    })
    .await;
    let slow = |_| {
        b.http
            .post(b.invoke_url("a"))
            .header("authorization", guest_auth())
            .header("x-test-delay-ms", "3000")
            .body("{}")
            .send()
    };
    let results = futures::future::join_all((0..10).map(slow)).await;
    let statuses: Vec<u16> = results
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    for r in results
        .into_iter()
        .map(Result::unwrap)
        .filter(|r| r.status() == 429)
    {
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(
            json(r).await["error"],
            "Too many concurrent requests in flight (count: 3, allowed: 3)."
        );
    }
}

/// Success, client abort and upstream reset, 1,000 times: every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_freed_after_success_abort_and_reset() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    const LIMIT: u32 = 4;
    b.apply(pb::TableUpdate {
        namespaces_upsert: vec![namespace("guest", 1_000_000, LIMIT)],
        actions_upsert: vec![action("guest/a", LIMIT)],
        endpoints_upsert: vec![endpoint("ca", "guest/a", u.addr, LIMIT)],
        ..Default::default()
    })
    .await;
    let one = |i: usize| {
        let http = b.http.clone();
        let url = b.invoke_url("a");
        async move {
            let req = http
                .post(url)
                .header("authorization", guest_auth())
                .body("{}");
            match i % 3 {
                0 => {
                    let _ = req.send().await;
                }
                1 => {
                    // The client gives up while the container is still working.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(20),
                        req.header("x-test-delay-ms", "300").send(),
                    )
                    .await;
                }
                _ => {
                    let _ = req.header("x-test-reset", "1").send().await;
                }
            }
        }
    };
    for batch in 0..(1000 / LIMIT as usize) {
        let base = batch * LIMIT as usize;
        futures::future::join_all((base..base + LIMIT as usize).map(one)).await;
    }
    eventually("upstream idle", Duration::from_secs(10), || async {
        u.active.load(Ordering::SeqCst) == 0
    })
    .await;
    // Resets opened the container's breaker (connection failure); wait for the half-open probe.
    eventually("breaker closed again", Duration::from_secs(15), || async {
        b.invoke("a").await.status() == 200
    })
    .await;
    // Were any namespace or container slot leaked, one of these would be refused (429/503).
    let calls = (0..LIMIT).map(|_| {
        b.http
            .post(b.invoke_url("a"))
            .header("authorization", guest_auth())
            .header("x-test-delay-ms", "500")
            .body("{}")
            .send()
    });
    let results = futures::future::join_all(calls).await;
    for r in results {
        assert_eq!(r.unwrap().status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_requests_for_a_cold_action_make_one_cold_start() {
    let b = Bench::start().await;
    let u = Upstream::start("cold").await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/cold", 20)],
        ..Default::default()
    })
    .await;
    b.cp.plan_cold_start(
        "guest/cold",
        ColdPlan {
            delay: Duration::from_millis(700),
            endpoint: endpoint("c1", "guest/cold", u.addr, 20),
        },
    );
    let results = futures::future::join_all((0..20).map(|_| b.invoke("cold"))).await;
    for r in results {
        assert_eq!(r.status(), 200);
        assert_eq!(json(r).await["upstream"], "cold");
    }
    assert_eq!(b.cp.cold_starts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cold_start_failure_is_503_with_retry_after() {
    let b = Bench::start().await;
    b.apply(pb::TableUpdate {
        actions_upsert: vec![action("guest/nowhere", 1)],
        ..Default::default()
    })
    .await;
    let r = b.invoke("nowhere").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        json(r).await["error"],
        "The server is currently unavailable (because it is overloaded or down for maintenance)."
    );
}

#[tokio::test]
async fn forged_routing_headers_never_change_the_destination() {
    let b = Bench::start().await;
    let (real, evil) = (Upstream::start("real").await, Upstream::start("evil").await);
    b.one_action("a", &real, 1).await;
    let r = b
        .http
        .post(b.invoke_url("a"))
        .header("authorization", guest_auth())
        .header("x-whisk-dst", evil.addr.to_string())
        .header("x-envoy-original-dst-host", evil.addr.to_string())
        .header("x-whisk-action", "other/secret")
        .header("x-whisk-namespace", "other")
        .header("x-whisk-forged", "1")
        .header("x-whisk-container-token", "forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["upstream"], "real");
    assert_eq!(v["headers"]["x-whisk-action"], "guest/a");
    assert_eq!(v["headers"]["x-whisk-namespace"], "guest");
    // The container's token comes from the table, never from the client.
    assert_eq!(
        v["headers"]["x-whisk-container-token"],
        whisk_testkit::tables::token_of("ca")
    );
    assert!(v["headers"].get("x-whisk-dst").is_none());
    assert!(v["headers"].get("x-whisk-forged").is_none());
    assert_eq!(evil.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    assert_eq!(b.invoke("a").await.status(), 200);
    b.cp.push(pb::TableUpdate {
        identities_removed: vec![GUEST_UUID.into()],
        ..Default::default()
    });
    eventually("revocation applied", Duration::from_secs(1), || async {
        b.invoke("a").await.status() == 401
    })
    .await;
}

#[tokio::test]
async fn management_calls_are_authenticated_by_ext_authz() {
    let b = Bench::start().await;
    let r = b
        .http
        .get(b.url("/api/v1/namespaces/_/actions"))
        .header("authorization", guest_auth())
        .header("x-whisk-auth-namespace", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["upstream"], "management");
    assert_eq!(v["headers"]["x-whisk-auth-namespace"], "guest");
    assert_eq!(v["headers"]["x-whisk-auth-uuid"], GUEST_UUID);
    let before = b.management.requests.load(Ordering::SeqCst);
    let r = b
        .http
        .get(b.url("/api/v1/namespaces/_/actions"))
        .header(
            "authorization",
            basic(GUEST_UUID, &GUEST_KEY.replace('1', "7")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"OpenWhisk secure realm\""
    );
    assert_eq!(
        json(r).await["error"],
        "The supplied authentication is invalid"
    );
    assert_eq!(b.management.requests.load(Ordering::SeqCst), before);
    // GET /api/v1 needs no credentials.
    let r = b.http.get(b.url("/api/v1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_fails_closed_while_the_router_is_down() {
    let mut b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 1).await;
    assert_eq!(b.invoke("a").await.status(), 200);
    let served = u.requests.load(Ordering::SeqCst);
    b.kill_router().await;
    for _ in 0..5 {
        let r = b.invoke("a").await;
        // Envoy's own answer: the router cluster has no healthy host. Nothing is forwarded.
        assert_eq!(r.status(), 503);
        assert_eq!(r.text().await.unwrap(), "");
        let r = b
            .http
            .get(b.url("/api/v1/namespaces/_/actions"))
            .header("authorization", guest_auth())
            .send()
            .await
            .unwrap();
        // The management API fails closed the same way (ext_authz cannot vouch for anyone).
        assert_eq!(r.status(), 503);
        assert_eq!(r.text().await.unwrap(), "");
    }
    assert_eq!(
        u.requests.load(Ordering::SeqCst),
        served,
        "nothing reached the container"
    );
    b.restart_router().await;
    eventually("serving again", Duration::from_secs(10), || async {
        b.invoke("a").await.status() == 200
    })
    .await;
}

/// Sends `body` with `Transfer-Encoding: chunked` (no `content-length`), in chunks of 512 bytes,
/// straight over a socket; returns the status line's code and the body of the answer.
async fn send_chunked(b: &Bench, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(b.envoy.listen)
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        guest_auth()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(512) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // Envoy may answer (and close) before the whole body is sent.
        if sock.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A body of 4 KiB of JSON (the router tests' namespaces allow 1 KiB).
fn oversized_params() -> Vec<u8> {
    serde_json::json!({ "pad": "x".repeat(4096) })
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413_and_the_action_never_runs() {
    let b = Bench::start().await;
    let u = Upstream::start("a").await;
    b.one_action("a", &u, 10).await;
    // Non-blocking: the router would run it itself; it never does.
    let (status, body) =
        send_chunked(&b, "/api/v1/namespaces/_/actions/a", &oversized_params()).await;
    assert_eq!(status, 413, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.starts_with("Request larger than allowed: ") && error.ends_with(" > 1024 bytes."),
        "{error}"
    );
    // Blocking, forwarded: refused as it streams past.
    let (status, body) = send_chunked(
        &b,
        "/api/v1/namespaces/_/actions/a?blocking=true",
        &oversized_params(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["code"].is_string(), "OpenWhisk's shape: {body}");
    // Neither reached the point of running: the non-blocking one is run by the router only once
    // its body is complete, so the container never saw it.
    let small = send_chunked(&b, "/api/v1/namespaces/_/actions/a", br#"{"n":1}"#).await;
    assert_eq!(small.0, 202, "a small chunked body is fine");
    eventually("the small one ran", Duration::from_secs(5), || async {
        u.requests.load(Ordering::SeqCst) >= 1
    })
    .await;
    let last = u.last.lock().unwrap().clone();
    assert_eq!(
        last["body"],
        serde_json::json!({ "n": 1 }),
        "only the small one ran"
    );
}

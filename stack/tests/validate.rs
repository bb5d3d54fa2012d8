//! Both shipped Envoy flavours render into configs that Envoy itself accepts.

use std::time::Duration;

use whisk_stack::envoy::{ADMIN_SOCKET, EnvoySpec, RouterLink, find_envoy, render, validate};

fn spec(router: RouterLink, dir: &std::path::Path) -> EnvoySpec {
    EnvoySpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        router,
        controlplane_api: "127.0.0.1:7002".parse().unwrap(),
        access_log: dir.join("access.log"),
        ingress_token: None,
        request_timeout: None,
    }
}

#[tokio::test]
async fn gateway_and_sidecar_configs_validate() {
    let envoy = find_envoy().expect("envoy installed (make envoy)");
    let dir = tempfile::tempdir().unwrap();
    for (name, link) in [
        (
            "gateway",
            RouterLink::Tcp("127.0.0.1:7001".parse().unwrap()),
        ),
        ("sidecar", RouterLink::Unix(dir.path().join("router.sock"))),
    ] {
        let admin = dir.path().join("admin.sock");
        let text =
            render(&spec(link, dir.path())).replace(ADMIN_SOCKET, &admin.display().to_string());
        assert!(!text.contains("{{"), "{name}: placeholder left: {text}");
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        tokio::time::timeout(Duration::from_secs(60), validate(&envoy, &path))
            .await
            .expect("validation finishes")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn a_broken_config_is_reported() {
    let envoy = find_envoy().expect("envoy installed (make envoy)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "static_resources: {listeners: [{name: x}]}").unwrap();
    assert!(validate(&envoy, &path).await.is_err());
}

//! Envoy's admin interface (unauthenticated: `/quitquitquit`, `/config_dump`) is a Unix domain
//! socket only the stack's user can open, never a TCP port: the only port Envoy listens on is
//! the API's.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use whisk_stack::envoy::{EnvoySpec, RouterLink, find_envoy, start};

/// Socket inodes among the open files of process `pid`.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("our child's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Ports of the TCP sockets (v4 and v6) listening with one of `inodes`.
fn listening_ports(inodes: &HashSet<u64>) -> HashSet<u16> {
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is f[1] (`ADDR:PORT` in hex), st is f[3] (`0A` = LISTEN), inode f[9].
            if f.len() > 9 && f[3] == "0A" && f[9].parse().is_ok_and(|i| inodes.contains(&i)) {
                let port = f[1].rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
                ports.insert(u16::from_str_radix(port, 16).expect("a hex port"));
            }
        }
    }
    ports
}

#[tokio::test]
async fn envoy_admin_is_a_private_socket_and_no_tcp_port() {
    let envoy_bin = find_envoy().expect("envoy installed (make envoy)");
    let dir = tempfile::tempdir().unwrap();
    for (name, link) in [
        ("gateway", RouterLink::Tcp("127.0.0.1:9".parse().unwrap())),
        ("sidecar", RouterLink::Unix(dir.path().join("router.sock"))),
    ] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let spec = EnvoySpec {
            listen: "127.0.0.1:0".parse().unwrap(),
            router: link,
            controlplane_api: "127.0.0.1:9".parse().unwrap(),
            access_log: sub.join("access.log"),
            ingress_token: None,
            request_timeout: None,
        };
        let envoy = start(&envoy_bin, &spec, &sub, Duration::from_secs(60))
            .await
            .expect("envoy starts");

        // `/ready` over the socket.
        let (status, body) = envoy.admin_get("/ready").await.expect("admin answers");
        assert_eq!((status, body.trim()), (200, "LIVE"), "{name}");

        // The socket is the owner's only.
        let meta = std::fs::metadata(&envoy.admin_socket).unwrap();
        assert!(meta.file_type().is_socket(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");

        // The API's port is the only TCP port Envoy listens on.
        let pid = envoy.process.id().expect("running");
        let ports = listening_ports(&socket_inodes(pid));
        assert_eq!(ports, HashSet::from([envoy.listen.port()]), "{name}");
    }
}

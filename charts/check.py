#!/usr/bin/env python3
"""Offline checks of charts/whisk (run by `make chart-check`, part of `make test`).

Renders the chart for its default values and for every charts/whisk/ci/*.yaml, then checks:
helm lint --strict; kubernetes-validate --strict against Kubernetes 1.32; the gateways' Envoy
config with `envoy --mode validate`; every flag passed to a whisk binary against its --help; that
every value is documented, used by a template, in the schema and in the README table; NOTES.txt;
and the rendered objects (security contexts, probes, RBAC verbs against the backend's source and
docs/architecture.md, NetworkPolicy selectors and ports, the guest-key Secret's lookup, labels,
selectors, Service target ports, the control plane's gRPC Service URL, CRD objects only where the
CRD is served). Renders pass --api-versions for the optional CRDs (ServiceMonitor, HTTPRoute).

Environment: HELM, KUBE_VALIDATE, ENVOY (paths to the tools), BIN_DIR (whisk binaries).
Exits non-zero and lists every failure when any check fails.
"""

import base64
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "whisk")
HELM = os.environ.get("HELM", os.path.join(ROOT, ".tools", "helm"))
KUBE_VALIDATE = os.environ.get(
    "KUBE_VALIDATE", os.path.join(ROOT, ".tools", "kv", "bin", "kubernetes-validate")
)
ENVOY = os.environ.get("ENVOY", os.path.join(ROOT, ".venv", "bin", "envoy"))
BIN_DIR = os.environ.get("BIN_DIR", os.path.join(ROOT, "target", "debug"))
KUBE_VERSION = "1.32.0"
RELEASE, NAMESPACE = "whisk", "whisk"
# The pod verbs the backend needs, as docs/architecture.md documents them.
ROLE_VERBS = {"create", "get", "list", "watch", "delete", "patch"}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kw)


def abs_path(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


# ---------------------------------------------------------------------------------------------
# Rendering


def value_files():
    return [None] + sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml")))


# CRDs the chart renders only where the cluster serves them.
SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"
HTTP_ROUTE = "gateway.networking.k8s.io/v1/HTTPRoute"
CRD_GROUPS = ("monitoring.coreos.com/", "gateway.networking.k8s.io/")


def render(values_file, capabilities=True):
    args = [abs_path(HELM), "template", RELEASE, CHART, "-n", NAMESPACE,
            "--kube-version", KUBE_VERSION]
    if capabilities:
        args += ["--api-versions", SERVICE_MONITOR, "--api-versions", HTTP_ROUTE]
    if values_file:
        args += ["-f", values_file]
    r = run(args)
    if not check(r.returncode == 0, f"helm template {values_file or 'defaults'}: {r.stderr}"):
        return None, []
    return r.stdout, [d for d in yaml.safe_load_all(r.stdout) if d]


def check_notes(label, values_file, docs, values):
    """NOTES.txt (rendered by a client-side dry-run install) prints the API host, how to read the
    guest key from its Secret, and the wsk / JS-client lines."""
    args = [abs_path(HELM), "install", "--dry-run=client", RELEASE, CHART, "-n", NAMESPACE]
    if values_file:
        args += ["-f", values_file]
    r = run(args)
    if not check(r.returncode == 0, f"{label}: helm install --dry-run=client: {r.stderr}"):
        return
    notes = r.stdout.split("\nNOTES:\n", 1)[-1] if "\nNOTES:\n" in r.stdout else ""
    svc = [s["metadata"]["name"] for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-gateway")]
    secret = values["guest"]["existingSecret"] or (guest_secrets(docs) or [{"metadata": {"name": "?"}}])[0]["metadata"]["name"]
    for want in ["wsk property set --apihost", "require('openwhisk')", f"get secret {secret} ",
                 f"{svc[0] if svc else '?'}.{NAMESPACE}.svc.cluster.local"]:
        check(want in notes, f"{label}: NOTES.txt shows `{want}`")


def lint(values_file):
    args = [abs_path(HELM), "lint", "--strict", CHART, "--kube-version", KUBE_VERSION]
    if values_file:
        args += ["-f", values_file]
    r = run(args)
    check(r.returncode == 0, f"helm lint --strict {values_file or 'defaults'}:\n{r.stdout}{r.stderr}")


def kube_validate(name, docs):
    # kubernetes-validate has no schema for CRDs: leave them out (checked in check_monitoring).
    builtin = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(builtin, f)
    try:
        r = run([abs_path(KUBE_VALIDATE), "--strict", "-k", KUBE_VERSION, "--quiet", f.name])
    finally:
        os.unlink(f.name)
    out = (r.stdout + r.stderr).strip()
    # A kind or apiVersion without a schema is only a WARN with exit 0: fail on any output.
    check(r.returncode == 0 and not out, f"kubernetes-validate --strict ({name}):\n{out}")


# ---------------------------------------------------------------------------------------------
# Helpers over rendered objects


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def pod_specs(docs):
    """(owner, pod spec, pod labels) of every workload."""
    out = []
    for d in docs:
        k = d["kind"]
        if k in ("Deployment", "StatefulSet", "Job"):
            t = d["spec"]["template"]
            out.append((d, t["spec"], t["metadata"].get("labels", {})))
        elif k == "Pod":
            out.append((d, d["spec"], d["metadata"].get("labels", {})))
    return out


def matches(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
            return False
        if e["operator"] == "NotIn" and labels.get(e["key"]) in e["values"]:
            return False
        if e["operator"] == "Exists" and e["key"] not in labels:
            return False
        if e["operator"] == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def name(d):
    return f"{d['kind']}/{d['metadata']['name']}"


def flag_values(args):
    """`--flag value` pairs of an argument list."""
    return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}


def controlplane_args(docs):
    sts = by_kind(docs, "StatefulSet")
    if not check(len(sts) == 1, "exactly one StatefulSet (the control plane)"):
        return {}
    c = sts[0]["spec"]["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}


# ---------------------------------------------------------------------------------------------
# Checks over one rendering


def check_security(label, docs):
    for owner, spec, _ in pod_specs(docs):
        n = f"{label} {name(owner)}"
        psc = spec.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True, f"{n}: pod runAsNonRoot")
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{n}: pod seccomp")
        check(spec.get("enableServiceLinks") is False, f"{n}: enableServiceLinks false")
        wants_token = owner["kind"] == "StatefulSet"
        check(spec.get("automountServiceAccountToken") is wants_token,
              f"{n}: automountServiceAccountToken {wants_token}")
        for v in spec.get("volumes", []):
            check(not ({"hostPath", "hostNetwork"} & set(v)), f"{n}: no host volumes")
        check(not spec.get("hostNetwork") and not spec.get("hostPID"), f"{n}: no host namespaces")
        for c in spec.get("initContainers", []) + spec["containers"]:
            cn = f"{n} container {c['name']}"
            sc = c.get("securityContext", {})
            check(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation false")
            check(sc.get("privileged") is False, f"{cn}: privileged false")
            check(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem")
            check(sc.get("runAsNonRoot") is True, f"{cn}: runAsNonRoot")
            check(isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, f"{cn}: runAsUser > 0")
            caps = sc.get("capabilities", {})
            check("ALL" in caps.get("drop", []) and not caps.get("add"), f"{cn}: drop ALL, add none")
            check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{cn}: seccomp")
            check("memory" in (c.get("resources", {}).get("limits") or {}), f"{cn}: memory limit")
            check(":" in c.get("image", "") and not c["image"].endswith(":"), f"{cn}: image has a tag")


def check_probes(label, docs):
    """Long-running containers (Deployments, StatefulSets) have readiness and liveness probes on
    ports they declare. One-shot containers (the guest-key Job, the helm test Pod) exit instead."""
    for owner, spec, _ in pod_specs(docs):
        if owner["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in spec["containers"]:
            cn = f"{label} {name(owner)} container {c['name']}"
            ports = {p.get("name") for p in c.get("ports", [])} | {
                p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not check(p, f"{cn}: {probe}"):
                    continue
                target = (p.get("httpGet") or p.get("tcpSocket") or p.get("grpc") or {}).get("port")
                check(target in ports, f"{cn}: {probe} port {target} is a port of the container")


def check_labels(label, docs):
    for d in docs:
        labels = d["metadata"].get("labels", {})
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                  "app.kubernetes.io/managed-by", "helm.sh/chart"):
            check(k in labels, f"{label} {name(d)}: label {k}")
    for d in by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet"):
        sel = d["spec"]["selector"]
        check(matches(sel, d["spec"]["template"]["metadata"]["labels"]),
              f"{label} {name(d)}: selector matches its pod template")
    pods = pod_specs(docs)
    for s in by_kind(docs, "Service"):
        sel = {"matchLabels": s["spec"].get("selector", {})}
        targets = [(o, sp) for o, sp, lab in pods if matches(sel, lab) and o["kind"] != "Job"]
        if not check(targets, f"{label} {name(s)}: selects some pod"):
            continue
        for port in s["spec"]["ports"]:
            tp = port.get("targetPort", port["port"])
            found = any(tp in {p.get("name") for c in sp["containers"] for p in c.get("ports", [])}
                        | {p["containerPort"] for c in sp["containers"] for p in c.get("ports", [])}
                        for _, sp in targets)
            check(found, f"{label} {name(s)}: targetPort {tp} is a container port")
    for ing in by_kind(docs, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = path["backend"]["service"]
                target = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == svc["name"]]
                check(target and svc["port"].get("name") in {p.get("name") for p in target[0]["spec"]["ports"]},
                      f"{label} {name(ing)}: backend is a port of a rendered Service")
    for d in by_kind(docs, "PodDisruptionBudget") + by_kind(docs, "HorizontalPodAutoscaler"):
        if d["kind"] == "PodDisruptionBudget":
            ok = any(matches(d["spec"]["selector"], lab) for o, _, lab in pods
                     if o["kind"] == "Deployment")
            check(ok, f"{label} {name(d)}: selects the gateways")
        else:
            ref = d["spec"]["scaleTargetRef"]["name"]
            check(any(x["metadata"]["name"] == ref for x in by_kind(docs, "Deployment")),
                  f"{label} {name(d)}: scales a rendered Deployment")
            dep = [x for x in by_kind(docs, "Deployment") if x["metadata"]["name"] == ref]
            check(dep and "replicas" not in dep[0]["spec"], f"{label}: autoscaled Deployment sets no replicas")


def backend_source():
    with open(os.path.join(ROOT, "controlplane", "src", "backend", "kubernetes.rs")) as f:
        return f.read()


def check_rbac(label, docs):
    src = backend_source()
    used = set()
    for verb, pattern in (("create", r"\.create\("), ("delete", r"\.delete\("),
                          ("patch", r"\.patch\("), ("get", r"\.get(_opt)?\(&?name"),
                          ("list", r"\.list\(|watcher\("), ("watch", r"watcher\(|\.watch\(")):
        if re.search(pattern, src):
            used.add(verb)
    with open(os.path.join(ROOT, "docs", "architecture.md")) as f:
        m = re.search(r"`pods: ([a-z, \n]+)`", f.read())
    documented = {v.strip() for v in m.group(1).replace("\n", " ").split(",")} if m else set()
    check(documented == ROLE_VERBS, f"docs/architecture.md documents pod verbs {sorted(ROLE_VERBS)}")
    args = controlplane_args(docs)
    roles = by_kind(docs, "Role")
    check(not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding"),
          f"{label}: no cluster-wide RBAC")
    if not check(len(roles) == 1, f"{label}: exactly one Role"):
        return
    role = roles[0]
    check(role["metadata"]["namespace"] == args.get("--kube-namespace"),
          f"{label}: the Role is in the actions' namespace (--kube-namespace)")
    rules = role["rules"]
    check(len(rules) == 1 and rules[0]["apiGroups"] == [""] and rules[0]["resources"] == ["pods"],
          f"{label}: the Role grants only core pods")
    verbs = set(rules[0].get("verbs", []))
    check(verbs == ROLE_VERBS, f"{label}: Role verbs {sorted(verbs)} != {sorted(ROLE_VERBS)}")
    check(used <= verbs, f"{label}: the backend uses verbs {sorted(used - verbs)} the Role lacks")
    sts = by_kind(docs, "StatefulSet")[0]
    sa = sts["spec"]["template"]["spec"]["serviceAccountName"]
    rbs = [b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]]
    check(rbs and rbs[0]["metadata"]["namespace"] == role["metadata"]["namespace"]
          and rbs[0]["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}],
          f"{label}: the RoleBinding gives the Role to the control plane's service account")
    check(args.get("--backend") == "kubernetes", f"{label}: control plane runs --backend kubernetes")
    # Action pods and routers reach the control plane's gRPC port through its Service.
    router = [c for d in by_kind(docs, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]
              if c.get("command", [""])[0] == "whisk-router"]
    router_args = router[0].get("args", []) if router else []
    router_url = router_args[router_args.index("--controlplane") + 1] if "--controlplane" in router_args else ""
    svc_hosts = {f"{s['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{p['port']}"
                 for s in by_kind(docs, "Service") for p in s["spec"]["ports"] if p.get("targetPort") == "grpc"
                 and s["spec"].get("clusterIP") != "None"}
    for what, url in (("--grpc-advertise", args.get("--grpc-advertise", "")), ("router --controlplane", router_url)):
        check(url.removeprefix("http://") in svc_hosts, f"{label}: {what} {url!r} is the control plane's gRPC Service")
    check(any(v["metadata"].get("name") == "data" for v in sts["spec"].get("volumeClaimTemplates", [])),
          f"{label}: control plane store on a PersistentVolumeClaim")


def np_ports(rule):
    return {(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", [])}


def check_network(label, docs):
    pols = by_kind(docs, "NetworkPolicy")
    if not pols:
        return
    args = controlplane_args(docs)
    actions_ns, stack = args.get("--kube-namespace"), args.get("--kube-stack")
    stack_label = re.search(r'STACK_LABEL: &str = "([^"]+)"', backend_source()).group(1)
    action_labels = {stack_label: stack}
    pods = {o["kind"]: lab for o, _, lab in pod_specs(docs) if o["kind"] in ("Deployment", "StatefulSet")}
    gw, cp = pods.get("Deployment", {}), pods.get("StatefulSet", {})
    deny = [p for p in pols if not p["spec"].get("ingress") and not p["spec"].get("egress")]
    check(any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
              and p["metadata"]["namespace"] == NAMESPACE
              and matches(p["spec"]["podSelector"], gw) and matches(p["spec"]["podSelector"], cp)
              for p in deny), f"{label}: a default-deny policy covers the release's pods")
    for o, _, lab in pod_specs(docs):
        ok = any(matches(p["spec"]["podSelector"], lab) for p in deny)
        check(ok, f"{label} {name(o)}: under the default deny")
    act = [p for p in pols if p["metadata"]["namespace"] == actions_ns
           and matches(p["spec"]["podSelector"], action_labels)]
    if not check(len(act) == 1, f"{label}: one NetworkPolicy selects the action pods ({stack_label}={stack})"):
        return
    spec = act[0]["spec"]
    check(set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{label}: action pods isolated both ways")
    peers = []
    for rule in spec.get("ingress", []):
        check(np_ports(rule) == {(8085, "TCP")}, f"{label}: action pods accept only the proxy port 8085")
        for peer in rule.get("from", []):
            check("ipBlock" not in peer, f"{label}: action pods accept no ipBlock")
            ns_ok = peer.get("namespaceSelector", {}).get("matchLabels") == {
                "kubernetes.io/metadata.name": NAMESPACE}
            check(ns_ok, f"{label}: action pods' ingress peers are in the release namespace")
            peers.append(peer.get("podSelector", {}))
    check(peers and all(matches(p, gw) or matches(p, cp) for p in peers),
          f"{label}: action pods accept only gateway and control-plane pods")
    check(any(matches(p, gw) for p in peers), f"{label}: action pods accept the gateways")
    for rule in spec.get("egress", []):
        for peer in rule.get("to", []):
            if "podSelector" in peer and matches(peer["podSelector"], cp):
                check(np_ports(rule) == {(7001, "TCP")},
                      f"{label}: action pods reach only the control plane's gRPC port")
            if "ipBlock" in peer:
                check({"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
                      <= set(peer["ipBlock"].get("except", [])),
                      f"{label}: action pods' internet egress excludes private ranges")
            if "podSelector" in peer and matches(peer["podSelector"], gw):
                check(np_ports(rule) == {(8080, "TCP")},
                      f"{label}: action pods reach only the gateways' API port (no admin ports)")
    # Gateways admit anyone on the API port, scrapers (networkPolicy.metricsFrom) on the router's
    # metrics port, nothing else.
    gw_pols = [p for p in pols if p["metadata"]["namespace"] == NAMESPACE and p["spec"].get("ingress")
               and matches(p["spec"]["podSelector"], gw)]
    for p in gw_pols:
        for rule in p["spec"]["ingress"]:
            if np_ports(rule) == {(8080, "TCP")}:
                continue
            check(np_ports(rule) == {(9090, "TCP")} and rule.get("from"),
                  f"{label} {name(p)}: gateways admit only the API port, and 9090 from given scrapers")
            check(not any("ipBlock" in peer for peer in rule.get("from", []))
                  and not any(matches(peer.get("podSelector", {"matchLabels": {"x": "y"}}), action_labels)
                              for peer in rule.get("from", [])),
                  f"{label} {name(p)}: action pods cannot reach the routers' admin port")
    # Every pod selector of the release's policies selects some rendered pod.
    all_labels = [lab for _, _, lab in pod_specs(docs)]
    for p in pols:
        if p["metadata"]["namespace"] != NAMESPACE:
            continue
        check(any(matches(p["spec"]["podSelector"], lab) for lab in all_labels),
              f"{label} {name(p)}: podSelector selects a rendered pod")
        for rule in p["spec"].get("ingress", []) + p["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    check(any(matches(peer["podSelector"], lab) for lab in all_labels),
                          f"{label} {name(p)}: peer selector selects a rendered pod")


def check_monitoring(label, docs, values):
    monitors = by_kind(docs, "ServiceMonitor")
    wanted = values["telemetry"]["serviceMonitor"]["enabled"]
    check(len(monitors) == (1 if wanted else 0), f"{label}: a ServiceMonitor iff telemetry.serviceMonitor.enabled")
    for m in monitors:
        svcs = [s for s in by_kind(docs, "Service") if matches(m["spec"]["selector"], s["metadata"]["labels"])]
        check(len(svcs) == 1, f"{label} {name(m)}: selects exactly one Service")
        for ep in m["spec"]["endpoints"]:
            check(svcs and ep["port"] in {p["name"] for p in svcs[0]["spec"]["ports"]},
                  f"{label} {name(m)}: endpoint port {ep['port']} is a port of that Service")
            check(ep.get("path") == "/metrics", f"{label} {name(m)}: scrapes /metrics")
        check(all(s["spec"]["type"] == "ClusterIP" for s in svcs), f"{label}: metrics never on a LoadBalancer")
    routes = by_kind(docs, "HTTPRoute")
    route_wanted = values["gateway"]["httpRoute"]["enabled"]
    check(len(routes) == (1 if route_wanted else 0), f"{label}: an HTTPRoute iff gateway.httpRoute.enabled")
    for r in routes:
        check(r["spec"].get("parentRefs"), f"{label} {name(r)}: attaches to a Gateway")
        for rule in r["spec"]["rules"]:
            for b in rule["backendRefs"]:
                svc = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == b["name"]]
                check(svc and b["port"] in {p["port"] for p in svc[0]["spec"]["ports"]},
                      f"{label} {name(r)}: backend {b['name']}:{b['port']} is a rendered Service port")
    if wanted or route_wanted:
        _, plain = render(values.get("_file"), capabilities=False)
        check(not by_kind(plain, "ServiceMonitor") and not by_kind(plain, "HTTPRoute"),
              f"{label}: no CRD objects where their CRDs are not served")


def guest_secrets(docs):
    """The guest-key Secrets (the admin-token and router-token Secrets are checked by
    `check_admin_token` and `check_router_token`)."""
    return [d for d in by_kind(docs, "Secret")
            if not d["metadata"]["name"].endswith(("-admin-token", "-router-token"))]


def check_admin_token(label, docs):
    """One admin-token Secret, kept on upgrade, mounted (owner and group only) into the control
    plane, which is told to use it, and into the jobs that call the admin API."""
    secrets = [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-admin-token")]
    if not check(len(secrets) == 1 and set(secrets[0]["data"]) == {"token"},
                 f"{label}: one admin-token Secret with a token"):
        return
    secret_name = secrets[0]["metadata"]["name"]
    for o, spec, _ in pod_specs(docs):
        mounts_it = any(v.get("secret", {}).get("secretName") == secret_name
                        and v["secret"].get("defaultMode") == 0o440 for v in spec.get("volumes", []))
        args = [a for c in spec["containers"] for a in c.get("args", [])]
        envs = {e["name"]: e.get("value") for c in spec["containers"] for e in c.get("env", [])}
        if o["kind"] == "StatefulSet":
            check(mounts_it and "--admin-token-file" in args,
                  f"{label} {name(o)}: the control plane uses the admin-token Secret")
        if o["kind"] == "Job":
            check(mounts_it and envs.get("WHISK_ADMIN_TOKEN_FILE"),
                  f"{label} {name(o)}: the admin job presents the admin token")
    with open(os.path.join(CHART, "templates", "secret-admin.yaml")) as f:
        src = f.read()
    check(re.search(r'lookup "v1" "Secret" \.Release\.Namespace', src)
          and "$existing.data" in src, "secret-admin.yaml keeps an existing Secret (lookup)")


def check_router_token(label, docs):
    """One router-token Secret (64 hex characters), kept on upgrade, mounted (owner and group
    only) into the control plane, which is told to demand it, and into every gateway's router
    container (and no other container), which is told to present it."""
    secrets = [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-router-token")]
    if not check(len(secrets) == 1 and set(secrets[0]["data"]) == {"token"},
                 f"{label}: one router-token Secret with a token"):
        return
    token = base64.b64decode(secrets[0]["data"]["token"]).decode()
    check(re.fullmatch(r"[0-9a-f]{64}", token) is not None,
          f"{label}: the router token is 64 hex characters")
    secret_name = secrets[0]["metadata"]["name"]
    for o, spec, _ in pod_specs(docs):
        volumes = [v["name"] for v in spec.get("volumes", [])
                   if v.get("secret", {}).get("secretName") == secret_name
                   and v["secret"].get("defaultMode") == 0o440]
        for c in spec["containers"]:
            mounts = {m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in volumes}
            args = flag_values(c.get("args", []))
            command = os.path.basename(c.get("command", [""])[0])
            where = f"{label} {name(o)} container {c['name']}"
            if o["kind"] == "StatefulSet":
                f = args.get("--router-token-file", "")
                check(os.path.dirname(f) in mounts,
                      f"{where}: the control plane demands the router-token Secret")
            elif command == "whisk-router":
                f = args.get("--controlplane-token-file", "")
                check(os.path.dirname(f) in mounts,
                      f"{where}: the router presents the router-token Secret")
            else:
                check(not mounts, f"{where}: does not mount the router token")
    with open(os.path.join(CHART, "templates", "secret-router-token.yaml")) as f:
        src = f.read()
    check(re.search(r'lookup "v1" "Secret" \.Release\.Namespace', src)
          and "$existing.data" in src, "secret-router-token.yaml keeps an existing Secret (lookup)")


def check_secret(label, docs, values):
    check_admin_token(label, docs)
    check_router_token(label, docs)
    existing = values.get("guest", {}).get("existingSecret")
    secrets = guest_secrets(docs)
    if existing:
        check(not secrets, f"{label}: no Secret rendered when guest.existingSecret is given")
        secret_name = existing
    else:
        if not check(len(secrets) == 1 and set(secrets[0]["data"]) == {"uuid", "key"},
                     f"{label}: one guest Secret with uuid and key"):
            return
        secret_name = secrets[0]["metadata"]["name"]
    for o, spec, _ in pod_specs(docs):
        if o["kind"] in ("Job", "Pod"):
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in spec["containers"]
                    for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
            check(refs == {secret_name}, f"{label} {name(o)}: reads the guest Secret {secret_name}")
    with open(os.path.join(CHART, "templates", "secret-guest.yaml")) as f:
        src = f.read()
    check(re.search(r'lookup "v1" "Secret" \.Release\.Namespace', src)
          and "$existing.data" in src, "secret-guest.yaml keeps an existing Secret (lookup)")


def check_envoy(label, docs):
    cms = [d for d in by_kind(docs, "ConfigMap") if "envoy.yaml" in d.get("data", {})]
    if not check(len(cms) == 1, f"{label}: one ConfigMap with envoy.yaml"):
        return
    cfg = cms[0]["data"]["envoy.yaml"]
    check("{{" not in cfg, f"{label}: Envoy config has no unfilled placeholder")
    admin = (yaml.safe_load(cfg).get("admin") or {}).get("address", {})
    check(set(admin) == {"pipe"} and admin["pipe"].get("mode") == 0o600,
          f"{label}: Envoy's admin interface is a 0600 Unix domain socket, not a port")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(cfg)
    try:
        r = run([abs_path(ENVOY), "--mode", "validate", "-c", f.name, "--log-level", "error"])
    finally:
        os.unlink(f.name)
    check(r.returncode == 0, f"{label}: envoy --mode validate:\n{r.stdout}{r.stderr}")
    dep = by_kind(docs, "Deployment")[0]
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    check("checksum/envoy" in ann, f"{label}: gateways roll when the Envoy config changes")


_help_cache = {}


def help_text(cmd):
    key = tuple(cmd)
    if key not in _help_cache:
        exe = abs_path(ENVOY) if cmd[0] == "envoy" else os.path.join(abs_path(BIN_DIR), cmd[0])
        r = run([exe] + cmd[1:] + ["--help"])
        check(r.returncode == 0, f"{' '.join(cmd)} --help: {r.stderr}")
        _help_cache[key] = r.stdout
    return _help_cache[key]


def check_flags_in_help(where, cmd, tokens):
    helptext = help_text(cmd)
    for t in tokens:
        if t.startswith("--"):
            flag = t.split("=", 1)[0]
            check(re.search(re.escape(flag) + r"[ ,=\n<]", helptext),
                  f"{where}: `{' '.join(cmd)}` has no flag {flag}")


def check_flags(label, docs):
    seen = 0
    for o, spec, _ in pod_specs(docs):
        for c in spec["containers"]:
            where = f"{label} {name(o)} container {c['name']}"
            command = c.get("command", [])
            binary = os.path.basename(command[0]) if command else ""
            if binary == "whisk":
                check_flags_in_help(where, ["whisk"] + command[1:], c.get("args", []))
                seen += 1
            elif binary == "whisk-router":
                check_flags_in_help(where, ["whisk-router"] + command[1:], c.get("args", []))
                seen += 1
            elif binary == "envoy":
                check_flags_in_help(where, ["envoy"], c.get("args", []))
                seen += 1
            elif binary == "sh":
                script = "\n".join(c.get("args", []))
                for m in re.finditer(r"whisk admin user (create|get|delete)([^\n]*)", script):
                    check_flags_in_help(where, ["whisk", "admin", "user", m.group(1)], m.group(2).split())
                    seen += 1
    check(seen >= 4, f"{label}: flags of Envoy, the router, the control plane and the guest job checked")


# ---------------------------------------------------------------------------------------------
# Values: documented, used, in the schema and the README


FREE_FORM = ("requests", "limits", "nodeSelector", "affinity", "tolerations", "imagePullSecrets",
             "annotations", "apiServerPorts", "metricsFrom")


def value_paths(v, prefix=""):
    out = []
    for k, x in v.items():
        p = f"{prefix}{k}"
        out.append(p)
        if isinstance(x, dict) and x and k not in FREE_FORM:
            out += value_paths(x, p + ".")
    return out


def check_values():
    with open(os.path.join(CHART, "values.yaml")) as f:
        text = f.read()
    values = yaml.safe_load(text)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z0-9_]+:", line):
            prev = lines[i - 1].strip() if i else ""
            check(prev.startswith("#"), f"values.yaml line {i + 1} `{line.strip()}` has no comment above it")
    templates = ""
    for p in glob.glob(os.path.join(CHART, "templates", "**", "*"), recursive=True):
        if os.path.isfile(p):
            with open(p) as f:
                templates += f.read()
    used = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+?)(?=[^A-Za-z0-9_.]|$)", templates))
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    paths = value_paths(values)
    for p in paths:
        parts = p.split(".")
        is_leaf = not (isinstance(_get(values, parts), dict) and parts[-1] not in FREE_FORM
                       and _get(values, parts))
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if is_leaf:
            check(ancestors & used, f"values.yaml `{p}` is used by no template")
        node = schema
        for part in parts:
            node = (node.get("properties") or {}).get(part)
            if node is None:
                break
        if check(node is not None, f"values.schema.json lacks `{p}`"):
            check(node.get("description"), f"values.schema.json `{p}` has no description")
        if is_leaf:
            check(f"`{p}`" in readme, f"charts/whisk/README.md values table lacks `{p}`")
    for u in used:
        check(_get(values, u.split(".")) is not _MISSING, f"templates use `.Values.{u}`, absent from values.yaml")

    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            check(node.get("additionalProperties") is False,
                  f"values.schema.json `{path or '.'}` must reject unknown keys")
            for k, sub in node["properties"].items():
                p = f"{path}.{k}" if path else k
                check(p in paths, f"values.schema.json `{p}` is not in values.yaml")
                walk(sub, p)
    walk(schema, "")
    return values


_MISSING = object()


def _get(v, parts):
    for p in parts:
        if not isinstance(v, dict) or p not in v:
            return _MISSING
        v = v[p]
    return v


def merged_values(base, values_file):
    if not values_file:
        return base
    with open(values_file) as f:
        over = yaml.safe_load(f) or {}
    over["_file"] = values_file

    def merge(a, b):
        out = dict(a)
        for k, x in b.items():
            out[k] = merge(a[k], x) if isinstance(x, dict) and isinstance(a.get(k), dict) else x
        return out
    return merge(base, over)


def check_sources():
    link = os.path.join(CHART, "files", "envoy-sidecar.yaml")
    check(os.path.islink(link) and os.path.realpath(link)
          == os.path.realpath(os.path.join(ROOT, "envoy", "sidecar.yaml")),
          "charts/whisk/files/envoy-sidecar.yaml is a symlink to envoy/sidecar.yaml (one source)")
    for d in ("whisk", "container-proxy"):
        p = os.path.join(ROOT, "images", d, "Dockerfile")
        if check(os.path.isfile(p), f"images/{d}/Dockerfile exists"):
            with open(p) as f:
                df = f.read()
            check(len(re.findall(r"^FROM ", df, re.M)) >= 2, f"images/{d}/Dockerfile is multi-stage")
            users = re.findall(r"^USER (\S+)", df, re.M)
            check(users and users[-1] not in ("root", "0", "0:0"), f"images/{d}/Dockerfile ends non-root")


def main():
    for tool in (HELM, KUBE_VALIDATE, ENVOY):
        if not os.access(abs_path(tool), os.X_OK):
            sys.exit(f"missing {tool}: run `make chart-tools envoy`")
    base = check_values()
    # The schema is enforced: an unknown key and a wrong enum value are refused.
    for bad in ("gateway.replica=2", "gateway.service.type=Internal", "telemetry.traceSampleRatio=2"):
        r = run([abs_path(HELM), "template", RELEASE, CHART, "--set", bad])
        check(r.returncode != 0 and "schema" in r.stderr, f"values.schema.json refuses --set {bad}")
    check_sources()
    files = value_files()
    check(len(files) >= 3, "charts/whisk/ci has values files to render")
    for vf in files:
        label = os.path.relpath(vf, CHART) if vf else "defaults"
        lint(vf)
        text, docs = render(vf)
        if text is None:
            continue
        kube_validate(label, docs)
        check_monitoring(label, docs, merged_values(base, vf))
        check_security(label, docs)
        check_probes(label, docs)
        check_labels(label, docs)
        check_rbac(label, docs)
        check_network(label, docs)
        check_secret(label, docs, merged_values(base, vf))
        check_envoy(label, docs)
        check_flags(label, docs)
        check_notes(label, vf, docs, merged_values(base, vf))
    if failures:
        print(f"chart-check: {len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print(f"chart-check: ok ({len(files)} renderings of charts/whisk)")


if __name__ == "__main__":
    main()

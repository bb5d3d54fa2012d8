// End to end: action code is hostile. A Python action, invoked through the real stack, tries
// every door an action on this machine can reach — the control plane's admin and management
// ports, another tenant's warm container proxy, the data directory, the stack's process
// environment, inherited descriptors — and must get through none of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openwhisk from 'openwhisk';
import { startStack, GUEST_KEY } from './stack.mjs';

let stack;
let dataDir;
let guest;
let mallory;

// Each check answers a short string saying what happened; the test compares them.
const PROBE = String.raw`
import json, os, urllib.request, urllib.error

def http(method, url, headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return str(r.status)
    except urllib.error.HTTPError as e:
        return str(e.code)
    except Exception as e:
        return "error " + type(e).__name__

def attempt(fn):
    try:
        return "read " + str(fn())[:40]
    except PermissionError:
        return "denied"
    except Exception as e:
        return "error " + type(e).__name__

def main(a):
    out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    out["env"] = sorted(os.environ.keys())
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass
    out["fds"] = fds
    out["data_dir"] = attempt(lambda: os.listdir(a["dataDir"]))
    out["admin_token"] = attempt(lambda: open(os.path.join(a["dataDir"], "admin-token")).read())
    out["store"] = attempt(lambda: open(os.path.join(a["dataDir"], "store", "controlplane.redb"), "rb").read(4))
    out["logs"] = attempt(lambda: os.listdir(os.path.join(a["dataDir"], "logs")))
    out["stack_environ"] = attempt(lambda: open("/proc/%d/environ" % a["stackPid"], "rb").read())
    out["admin_api"] = http("GET", a["admin"] + "/_whisk/admin/namespaces/guest/users")
    forged = {"x-whisk-auth-namespace": "guest", "x-whisk-auth-uuid": a["guestUuid"], "x-whisk-auth-subject": "guest"}
    out["mgmt_forged"] = http("GET", a["admin"] + "/api/v1/namespaces/guest/actions", forged)
    ctx = {
        "x-whisk-activation-id": "0123456789abcdef0123456789abcdef",
        "x-whisk-transaction-id": "tid-mallory",
        "x-whisk-namespace": "guest",
        "x-whisk-subject": "guest",
        "x-whisk-action": "guest/victim",
        "x-whisk-blocking": "true",
        "x-whisk-deadline": "99999999999999",
        "x-whisk-received-at": "1",
        "content-type": "application/json",
    }
    out["proxies"] = {}
    for addr in a["proxies"]:
        base = "http://" + addr
        out["proxies"][addr] = {
            "run": http("POST", base + "/api/v1/namespaces/guest/actions/victim", ctx, b"{}"),
            "init": http("POST", base + "/_whisk/init", {"content-type": "application/json"},
                         json.dumps({"value": {"name": "x", "main": "main", "code": "def main(a): return a", "kind": "python:3"}}).encode()),
            "end": http("GET", base + "/_whisk/activations/0123456789abcdef0123456789abcdef/end"),
        }
    return out
`;

/** Every container proxy's address, from the container logs (each logs where it listens). */
function proxyAddresses(dataDir) {
  const dir = join(dataDir, 'logs', 'containers');
  const out = [];
  for (const f of readdirSync(dir)) {
    const m = readFileSync(join(dir, f), 'utf8').match(/listening.*?addr=(127\.0\.0\.1:\d+)|addr=(127\.0\.0\.1:\d+).*?listening/);
    if (m) out.push(m[1] ?? m[2]);
  }
  return out;
}

before(async () => {
  // A data directory anyone may read, as a fresh checkout's `.whisk` would be: the stack must
  // close it itself.
  dataDir = mkdtempSync(join(tmpdir(), 'whisk-e2e-isolation-'));
  chmodSync(dataDir, 0o755);
  stack = await startStack({ dataDir });
  guest = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
  const key = stack.admin('user', 'create', 'mallory').trim().split('\n').pop();
  mallory = openwhisk({ apihost: stack.apihost, api_key: key });
  await guest.actions.create({ name: 'victim', action: 'function main() { return { victim: "ran" }; }' });
  await mallory.actions.create({ name: 'probe', action: PROBE, kind: 'python:3' });
  // The victim is warm: its container is one of those the probe will try.
  assert.deepEqual(await guest.actions.invoke({ name: 'victim', blocking: true, result: true }), { victim: 'ran' });
});

after(async () => {
  await stack?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('a hostile action reaches no port, file, process or descriptor of the stack or another tenant', async () => {
  const proxies = proxyAddresses(stack.dataDir);
  assert.ok(proxies.length >= 1, 'the victim container logged its address');
  const got = await mallory.actions.invoke({
    name: 'probe',
    blocking: true,
    result: true,
    params: {
      dataDir: stack.dataDir,
      admin: stack.adminUrl,
      stackPid: stack.pid,
      guestUuid: GUEST_KEY.split(':')[0],
      proxies,
    },
  });
  const detail = JSON.stringify(got, null, 1);
  if (process.getuid() === 0) {
    // Root's stack runs each container's actions as a user of their own, in no group.
    assert.notEqual(got.uid, 0, detail);
    assert.notEqual(got.gid, 0, detail);
    assert.deepEqual(got.groups, [], detail);
    assert.equal(got.data_dir, 'denied', detail);
    assert.equal(got.admin_token, 'denied', detail);
    assert.equal(got.store, 'denied', detail);
    assert.equal(got.logs, 'denied', detail);
    assert.equal(got.stack_environ, 'denied', detail);
  }
  // Credentials are needed at every port.
  assert.equal(got.admin_api, '401', detail);
  assert.equal(got.mgmt_forged, '401', detail);
  for (const [addr, r] of Object.entries(got.proxies)) {
    assert.deepEqual(r, { run: '403', init: '403', end: '403' }, `${addr}: ${detail}`);
  }
  // Nothing of the stack's environment, and no descriptor but pipes and its own files.
  const allowed = new Set(['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', '__OW_API_HOST', 'PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'LC_CTYPE']);
  for (const k of got.env) assert.ok(allowed.has(k) || k.startsWith('__OW_'), `unexpected variable ${k}: ${detail}`);
  for (const [fd, target] of Object.entries(got.fds)) {
    assert.ok(!target.startsWith('socket:'), `fd ${fd} is a socket: ${detail}`);
    assert.ok(!target.includes(stack.dataDir), `fd ${fd} is in the data dir: ${detail}`);
  }
  // The victim's container still serves its owner.
  assert.deepEqual(await guest.actions.invoke({ name: 'victim', blocking: true, result: true }), { victim: 'ran' });
});

// Trust boundaries end to end: a container serves one caller namespace, so callers of a public
// action never share its process state, and each namespace reuses its own warm container.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';

let stack;
let guest;

before(async () => {
  stack = await startStack();
  guest = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
});

after(async () => {
  await stack?.stop();
});

const COUNTER = 'let count = 0; function main() { count += 1; return { count, pid: process.pid }; }';

test('two namespaces invoking one public action get their own containers', async () => {
  await guest.packages.create({ name: 'shared', package: { publish: true } });
  await guest.actions.create({ name: 'shared/count', action: COUNTER });
  const key = stack.admin('user', 'create', 'alice').trim().split('\n').pop();
  const alice = openwhisk({ apihost: stack.apihost, api_key: key });
  const run = (client) =>
    client.actions.invoke({ name: '/guest/shared/count', blocking: true, result: true });

  const g1 = await run(guest);
  const g2 = await run(guest);
  assert.equal(g1.count, 1);
  assert.equal(g2.count, 2, 'guest reuses its warm container');
  assert.equal(g2.pid, g1.pid);

  const a1 = await run(alice);
  assert.equal(a1.count, 1, "alice never sees guest's process state");
  assert.notEqual(a1.pid, g1.pid);
  const a2 = await run(alice);
  assert.equal(a2.count, 2, 'alice reuses her own warm container');
  assert.equal(a2.pid, a1.pid);

  const g3 = await run(guest);
  assert.equal(g3.count, 3);
  assert.equal(g3.pid, g1.pid);

  // Alice's activations are hers (reported by her container, stored under her namespace).
  const mine = await eventually('both of alice\'s records', async () => {
    const list = await alice.activations.list({ name: 'shared/count' });
    return list.length === 2 && list;
  });
  assert.ok(mine.every((a) => a.namespace === 'alice'), JSON.stringify(mine));
});

test('a container called directly, beside Envoy, runs nothing', async () => {
  await guest.actions.create({ name: 'direct', action: COUNTER });
  const first = await guest.actions.invoke({ name: 'direct', blocking: true, result: true });
  assert.equal(first.count, 1);
  // Where the router sent it (Envoy's access log names the container proxy of an invoke).
  const log = join(stack.dataDir, 'logs', 'envoy-access.log');
  const upstream = await eventually('the access log line', () => {
    const lines = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    const hit = lines.map((l) => JSON.parse(l)).find((l) => l.method === 'POST' && l.activation_id && l.path?.includes('/actions/direct'));
    return hit?.upstream;
  });
  const now = Date.now();
  const context = {
    'x-whisk-activation-id': '0123456789abcdef0123456789abcdef',
    'x-whisk-transaction-id': 'forged',
    'x-whisk-namespace': 'guest',
    'x-whisk-subject': 'guest',
    'x-whisk-action': 'guest/direct',
    'x-whisk-action-revision': '1',
    'x-whisk-blocking': 'true',
    'x-whisk-result': 'true',
    'x-whisk-deadline': String(now + 10_000),
    'x-whisk-received-at': String(now),
    'content-type': 'application/json',
  };
  for (const token of [undefined, 'f'.repeat(64)]) {
    const headers = token ? { ...context, 'x-whisk-container-token': token } : context;
    const r = await fetch(`http://${upstream}/api/v1/namespaces/guest/actions/direct?blocking=true`, {
      method: 'POST',
      headers,
      body: '{}',
    });
    assert.equal(r.status, 403, `token ${token}`);
  }
  // A client sending the header through Envoy does not get it to the container either: the router
  // sets the real one, and the invoke runs normally (in the same warm container).
  const r = await fetch(`${stack.apihost}/api/v1/namespaces/_/actions/direct?blocking=true&result=true`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(GUEST_KEY).toString('base64')}`,
      'content-type': 'application/json',
      'x-whisk-container-token': 'f'.repeat(64),
    },
    body: '{}',
  });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).count, 2, 'the direct calls ran nothing');
});

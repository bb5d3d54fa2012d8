// Trust boundaries end to end: a container serves one caller namespace, so callers of a public
// action never share its process state, and each namespace reuses its own warm container.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
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
    const list = await alice.activations.list({ name: 'count' });
    return list.length === 2 && list;
  });
  assert.ok(mine.every((a) => a.namespace === 'alice'), JSON.stringify(mine));
});

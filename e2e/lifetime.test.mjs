// End to end (real Envoy, router, control plane, container proxy and a node action): an
// activation whose caller stopped waiting still counts against the namespace's concurrency
// until it ends — after a client abort, and after a blocking wait expired (202).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, eventually } from './stack.mjs';

let stack;
let url;
let auth;

const SLOW = 'function main() { return new Promise((r) => setTimeout(() => r({ done: true }), 6000)); }';

before(async () => {
  stack = await startStack();
  const key = stack.admin('user', 'create', 'oneatatime').trim().split('\n').pop();
  // One at a time; the per-minute limit out of the way (the polls below count against it).
  stack.admin('limits', 'set', 'oneatatime', '--concurrent-invocations', '1', '--invocations-per-minute', '100000');
  const ow = openwhisk({ apihost: stack.apihost, api_key: key });
  await ow.actions.create({ name: 'slow', action: SLOW });
  auth = `Basic ${Buffer.from(key).toString('base64')}`;
  url = `${stack.apihost}/api/v1/namespaces/_/actions/slow?blocking=true`;
  // Warm it: one whole activation.
  const r = await fetch(url, { method: 'POST', headers: { authorization: auth }, body: '{}' });
  assert.equal(r.status, 200, await r.text());
});

after(async () => {
  await stack?.stop();
});

const invoke = (query = '') =>
  fetch(url + query, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: '{}' });

async function assertRefusedWhileItRuns() {
  const r = await invoke();
  assert.equal(r.status, 429, 'the first activation still counts');
  const body = await r.json();
  assert.equal(body.error, 'Too many concurrent requests in flight (count: 1, allowed: 1).');
  // Once it ended, the namespace is free again.
  await eventually('served again', async () => (await invoke()).status === 200, 15_000);
}

test('an aborted invoke keeps its concurrency until the activation ends', async () => {
  const abort = new AbortController();
  const pending = fetch(url, {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: '{}',
    signal: abort.signal,
  }).catch(() => 'aborted');
  // Wait until it holds the namespace's only slot, then walk away. (The namespace is throttled
  // before the action is looked up, so an invoke of a missing action is 429 exactly while the
  // slot is held, and 404 — holding nothing — otherwise.)
  await eventually('the invoke holds the slot', async () => {
    const r = await fetch(`${stack.apihost}/api/v1/namespaces/_/actions/no-such-action`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: '{}',
    });
    return r.status === 429;
  });
  abort.abort();
  assert.equal(await pending, 'aborted');
  await assertRefusedWhileItRuns();
});

test('a blocking invoke whose wait expired (202) keeps its concurrency until it ends', async () => {
  const r = await invoke('&timeout=300');
  assert.equal(r.status, 202);
  assert.ok((await r.json()).activationId);
  await assertRefusedWhileItRuns();
});

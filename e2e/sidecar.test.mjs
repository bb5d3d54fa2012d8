// The sidecar flavour (router beside Envoy on a Unix domain socket), end to end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, GUEST_KEY } from './stack.mjs';

let stack;
before(async () => {
  stack = await startStack({ flavour: 'sidecar' });
});
after(async () => {
  await stack?.stop();
});

test('sidecar flavour: create and invoke', async () => {
  const ow = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
  await ow.actions.create({ name: 'side', action: 'function main(p) { return { side: p.n * 2 }; }' });
  assert.deepEqual(await ow.actions.invoke({ name: 'side', blocking: true, result: true, params: { n: 21 } }), { side: 42 });
});

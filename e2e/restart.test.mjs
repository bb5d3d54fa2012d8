// Starting the stack a second time with the same data directory keeps everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, GUEST_KEY } from './stack.mjs';

test('actions and activations survive a restart', async () => {
  const first = await startStack({ keepData: true });
  let ow = openwhisk({ apihost: first.apihost, api_key: GUEST_KEY });
  await ow.actions.create({ name: 'durable', action: 'function main() { return { kept: true }; }' });
  const activation = await ow.actions.invoke({ name: 'durable', blocking: true });
  await first.stop();

  const second = await startStack({ dataDir: first.dataDir });
  try {
    ow = openwhisk({ apihost: second.apihost, api_key: GUEST_KEY });
    assert.equal((await ow.actions.get({ name: 'durable' })).name, 'durable');
    assert.deepEqual(await ow.actions.invoke({ name: 'durable', blocking: true, result: true }), { kept: true });
    const stored = await ow.activations.get({ name: activation.activationId });
    assert.deepEqual(stored.response.result, { kept: true });
  } finally {
    await second.stop();
  }
});

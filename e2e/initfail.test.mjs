// An action whose initialisation fails makes an activation, as in OpenWhisk (issue 16 item 2):
// the blocking caller gets 502 with the activation record (action developer error, the init's
// text and the lines printed during init), `x-openwhisk-activation-id` is set, and the record is
// stored: `activations get/logs/result/list` find it. Through Envoy, router, control plane and
// container proxies, with openwhisk@3.21.9 as users run it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';

const SYNTAX_ERROR = 'console.log("booting bootfail"); eval("function main( {");';

let stack;
let ow;

before(async () => {
  stack = await startStack();
  ow = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
  await ow.actions.create({ name: 'bootfail', action: SYNTAX_ERROR });
});

after(async () => {
  await stack?.stop();
});

/** The error a blocking invoke of `name` rejects with. */
async function invokeError(params) {
  try {
    await ow.actions.invoke({ blocking: true, ...params });
  } catch (err) {
    return err;
  }
  assert.fail('the invoke should have been rejected');
}

test('a blocking invoke of code that fails to initialise is a 502 carrying the developer-error record', async () => {
  const err = await invokeError({ name: 'bootfail' });
  assert.equal(err.statusCode, 502);
  const record = err.error;
  assert.match(record.activationId, /^[0-9a-f]{32}$/);
  assert.equal(record.name, 'bootfail');
  assert.equal(record.namespace, 'guest');
  assert.equal(record.response.status, 'action developer error');
  assert.equal(record.response.success, false);
  assert.match(record.response.result.error, /^Initialization has failed due to: SyntaxError/);
  assert.ok(record.logs.some((l) => l.endsWith('stdout: booting bootfail')), JSON.stringify(record.logs));
  assert.match(err.message, /Returned HTTP 502 .*Initialization has failed due to: SyntaxError/);

  const id = record.activationId;
  const stored = await eventually('the record stored', () => ow.activations.get({ name: id }));
  assert.equal(stored.activationId, id);
  assert.equal(stored.response.status, 'action developer error');
  assert.deepEqual(stored.response.result, record.response.result);
  assert.equal(stored.response.statusCode, undefined);
  const { logs } = await ow.activations.logs({ name: id });
  assert.ok(logs.some((l) => l.endsWith('stdout: booting bootfail')), JSON.stringify(logs));
  const result = await ow.activations.result({ name: id });
  assert.equal(result.status, 'action developer error');
  assert.deepEqual(result.result, record.response.result);
  const listed = await ow.activations.list({ name: 'bootfail' });
  assert.ok(listed.some((a) => a.activationId === id), JSON.stringify(listed));
});

test('the 502 carries x-openwhisk-activation-id, and result=true answers the error alone', async () => {
  const auth = Buffer.from(GUEST_KEY).toString('base64');
  const res = await fetch(`${stack.apihost}/api/v1/namespaces/_/actions/bootfail?blocking=true&result=true`, {
    method: 'POST',
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(res.status, 502);
  const id = res.headers.get('x-openwhisk-activation-id');
  assert.match(id ?? '', /^[0-9a-f]{32}$/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.match(body.error, /^Initialization has failed due to: SyntaxError/);
  const stored = await eventually('the record stored', () => ow.activations.get({ name: id }));
  assert.equal(stored.response.status, 'action developer error');
});

test('a non-blocking invoke stores the developer error with the init logs', async () => {
  const { activationId } = await ow.actions.invoke({ name: 'bootfail' });
  assert.match(activationId, /^[0-9a-f]{32}$/);
  const stored = await eventually('the record stored', () => ow.activations.get({ name: activationId }));
  assert.equal(stored.response.status, 'action developer error');
  assert.match(stored.response.result.error, /^Initialization has failed due to: SyntaxError/);
  assert.ok(stored.logs.some((l) => l.endsWith('stdout: booting bootfail')), JSON.stringify(stored.logs));
});

test('a python action that raises at import keeps its print and traceback in the record', async () => {
  await ow.actions.create({
    name: 'pybootfail',
    kind: 'python:3',
    action: 'print("importing pybootfail")\nraise ValueError("bad config")\n\ndef main(args):\n    return {}\n',
  });
  const err = await invokeError({ name: 'pybootfail' });
  assert.equal(err.statusCode, 502);
  const record = err.error;
  assert.equal(record.response.status, 'action developer error');
  assert.match(record.response.result.error, /^Initialization has failed due to: ValueError/);
  assert.ok(record.logs.some((l) => l.endsWith('stdout: importing pybootfail')), JSON.stringify(record.logs));
  assert.ok(record.logs.some((l) => l.includes('stderr:') && l.includes('ValueError: bad config')), JSON.stringify(record.logs));
});

// End to end through Envoy, router, control plane and container proxies, with the official
// OpenWhisk JS client (openwhisk@3.21.9) as users run it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';

const code = (file) => readFileSync(new URL(`./actions/${file}`, import.meta.url), 'utf8');
let stack;
let ow;

before(async () => {
  stack = await startStack();
  ow = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
});

after(async () => {
  await stack?.stop();
});

test('GET /api/v1 answers without credentials', async () => {
  const r = await fetch(`${stack.apihost}/api/v1`);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).description, 'OpenWhisk API');
});

test('create a nodejs action from a file and invoke it blocking with result', async () => {
  await ow.actions.create({ name: 'hello', action: code('hello.js') });
  const result = await ow.actions.invoke({ name: 'hello', blocking: true, result: true, params: { name: 'e2e' } });
  assert.deepEqual(result, { greeting: 'Hello, e2e!' });
});

test('a blocking invoke returns the full activation record', async () => {
  await ow.actions.update({ name: 'hello', action: code('hello.js') });
  const activation = await ow.actions.invoke({ name: 'hello', blocking: true });
  assert.match(activation.activationId, /^[0-9a-f]{32}$/);
  assert.equal(activation.namespace, 'guest');
  assert.equal(activation.name, 'hello');
  assert.equal(activation.response.status, 'success');
  assert.equal(activation.response.success, true);
  assert.deepEqual(activation.response.result, { greeting: 'Hello, world!' });
  assert.ok(activation.logs.some((l) => l.includes('stdout: greeting world')), activation.logs.join('\n'));
});

test('non-blocking invoke, then the activation, its result and its logs', async () => {
  const { activationId } = await ow.actions.invoke({ name: 'hello', params: { name: 'later' } });
  assert.match(activationId, /^[0-9a-f]{32}$/);
  const activation = await eventually('activation stored', () => ow.activations.get({ name: activationId }));
  assert.equal(activation.activationId, activationId);
  assert.deepEqual(activation.response.result, { greeting: 'Hello, later!' });
  const result = await ow.activations.result({ name: activationId });
  assert.deepEqual(result.result, { greeting: 'Hello, later!' });
  const { logs } = await ow.activations.logs({ name: activationId });
  assert.ok(logs.some((l) => /stdout: greeting later$/.test(l)), logs.join('\n'));
  const list = await ow.activations.list({ name: 'hello' });
  assert.ok(list.some((a) => a.activationId === activationId));
});

test('an action returning {error} makes the client see 502 and the text', async () => {
  await ow.actions.create({ name: 'fails', action: 'function main() { return { error: "it broke" }; }' });
  await assert.rejects(ow.actions.invoke({ name: 'fails', blocking: true, result: true }), (err) => {
    assert.equal(err.statusCode, 502);
    assert.match(err.message, /it broke/);
    return true;
  });
});

test('a wrong key gets 401', async () => {
  const bad = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY.replace(/.$/, 'X') });
  await assert.rejects(bad.actions.invoke({ name: 'hello', blocking: true }), (err) => {
    assert.equal(err.statusCode, 401);
    return true;
  });
  await assert.rejects(bad.actions.list(), (err) => err.statusCode === 401);
});

test('update: the next invoke runs the new code', async () => {
  await ow.actions.create({ name: 'changing', action: 'function main() { return { v: 1 }; }' });
  assert.deepEqual(await ow.actions.invoke({ name: 'changing', blocking: true, result: true }), { v: 1 });
  await ow.actions.update({ name: 'changing', action: 'function main() { return { v: 2 }; }' });
  assert.deepEqual(await ow.actions.invoke({ name: 'changing', blocking: true, result: true }), { v: 2 });
});

test('list, get and delete', async () => {
  await ow.actions.create({ name: 'doomed', action: 'function main() { return {}; }' });
  const names = (await ow.actions.list()).map((a) => a.name);
  assert.ok(names.includes('doomed') && names.includes('hello'), names.join(','));
  const got = await ow.actions.get({ name: 'doomed' });
  assert.equal(got.name, 'doomed');
  assert.equal(got.exec.kind, 'nodejs:20');
  await ow.actions.delete({ name: 'doomed' });
  await assert.rejects(ow.actions.get({ name: 'doomed' }), (err) => err.statusCode === 404);
  await assert.rejects(ow.actions.invoke({ name: 'doomed', blocking: true }), (err) => err.statusCode === 404);
});

test('a python action', async () => {
  await ow.actions.create({ name: 'pyhello', kind: 'python:3', action: code('hello.py') });
  const result = await ow.actions.invoke({ name: 'pyhello', blocking: true, result: true, params: { name: 'py' } });
  assert.deepEqual(result, { greeting: 'Hello, py!' });
});

test('default parameters merge under invoke parameters', async () => {
  await ow.actions.create({
    name: 'params',
    action: 'function main(p) { return { a: p.a, b: p.b }; }',
    params: { a: 'default-a', b: 'default-b' },
  });
  const result = await ow.actions.invoke({ name: 'params', blocking: true, result: true, params: { b: 'given-b' } });
  assert.deepEqual(result, { a: 'default-a', b: 'given-b' });
});

test('an action in a package', async () => {
  await ow.packages.create({ name: 'tools' });
  await ow.actions.create({ name: 'tools/echo', action: 'function main(p) { return { echo: p.x }; }' });
  const result = await ow.actions.invoke({ name: 'tools/echo', blocking: true, result: true, params: { x: 42 } });
  assert.deepEqual(result, { echo: 42 });
});

test('a namespace over its limits gets 429 with OpenWhisk text and Retry-After', async () => {
  const key = stack.admin('user', 'create', 'limited').trim().split('\n').pop();
  stack.admin('limits', 'set', 'limited', '--invocations-per-minute', '2');
  const lim = openwhisk({ apihost: stack.apihost, api_key: key });
  await lim.actions.create({ name: 'quick', action: 'function main() { return { ok: true }; }' });
  const auth = `Basic ${Buffer.from(key).toString('base64')}`;
  const url = `${stack.apihost}/api/v1/namespaces/_/actions/quick?blocking=true`;
  const statuses = [];
  let throttled;
  await eventually('the limit bites', async () => {
    const r = await fetch(url, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: '{}' });
    statuses.push(r.status);
    if (r.status === 429) throttled = r;
    return r.status === 429;
  });
  assert.ok(statuses.filter((s) => s === 200).length <= 2, statuses.join(','));
  assert.match(throttled.headers.get('retry-after'), /^[1-9][0-9]*$/);
  const body = await throttled.json();
  assert.match(body.error, /^Too many requests in the last minute \(count: \d+, allowed: 2\)\.$/);
  await assert.rejects(lim.actions.invoke({ name: 'quick', blocking: true }), (err) => err.statusCode === 429);
});

test('a key is printed once by user create and found nowhere after use', async () => {
  const created = stack.admin('user', 'create', 'keyed').trim().split('\n').pop();
  const [uuid, secret] = created.split(':');
  assert.equal(secret.length, 64);
  const keyed = openwhisk({ apihost: stack.apihost, api_key: created });
  await keyed.actions.create({ name: 'k', action: 'function main(p) { console.log("ran"); return { ok: true }; }' });
  const activation = await keyed.actions.invoke({ name: 'k', blocking: true });
  assert.equal(activation.response.result.ok, true);
  const answers = [
    await keyed.activations.get({ name: activation.activationId }),
    await keyed.activations.logs({ name: activation.activationId }),
    await keyed.activations.list(),
    await keyed.actions.get({ name: 'k' }),
    await keyed.namespaces.list(),
  ];
  const printed = [stack.admin('user', 'get', uuid), stack.admin('user', 'list', 'keyed')];
  assert.match(printed[0], new RegExp(`^${uuid} keyed keyed`));
  for (const text of [...answers.map((a) => JSON.stringify(a)), ...printed]) {
    assert.ok(!text.includes(secret), `the key is in ${text}`);
  }
  // Store, logs (router, access log, containers), Envoy's files: none holds the key.
  const needle = Buffer.from(secret);
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []);
  const files = walk(stack.dataDir);
  // The search sees what was stored and logged: the activation id is found.
  assert.ok(files.some((f) => readFileSync(f).includes(Buffer.from(activation.activationId))));
  const holding = files.filter((f) => readFileSync(f).includes(needle));
  assert.deepEqual(holding, []);
});

test('a sequence created with the JS client chains its components', async () => {
  await ow.actions.create({ name: 'inc', action: 'function main(p) { return { n: (p.n || 0) + 1 }; }' });
  await ow.actions.create({ name: 'twice', action: 'function main(p) { return { n: p.n * 2 }; }' });
  await ow.actions.create({ name: 'incTwice', sequence: ['inc', 'twice', 'inc'] });
  const got = await ow.actions.get({ name: 'incTwice' });
  assert.equal(got.exec.kind, 'sequence');
  assert.deepEqual(await ow.actions.invoke({ name: 'incTwice', blocking: true, result: true, params: { n: 1 } }), { n: 5 });
  const activation = await ow.actions.invoke({ name: 'incTwice', blocking: true, params: { n: 2 } });
  assert.deepEqual(activation.response.result, { n: 7 });
  assert.equal(activation.logs.length, 3);
  // The sequence's record and its components' records are stored.
  const stored = await eventually('sequence record', () => ow.activations.get({ name: activation.activationId }));
  assert.deepEqual(stored.logs, activation.logs);
  const first = await eventually('component record', () => ow.activations.get({ name: activation.logs[0] }));
  assert.equal(first.cause, activation.activationId);
});

test('an action can let its responses be cached (__ow_cache_max_age)', async () => {
  const code = 'let calls = 0; function main(p) { calls += 1; return { calls, echo: p.q, __ow_cache_max_age: 60 }; }';
  await ow.actions.create({ name: 'cached', action: code });
  const invoke = (q) => ow.actions.invoke({ name: 'cached', blocking: true, result: true, params: { q } });
  assert.deepEqual(await invoke('a'), { calls: 1, echo: 'a' }); // teaches the router
  assert.deepEqual(await invoke('a'), { calls: 2, echo: 'a' }); // stored
  assert.deepEqual(await invoke('a'), { calls: 2, echo: 'a' }); // served from the cache
  assert.deepEqual(await invoke('b'), { calls: 3, echo: 'b' }); // other parameters: the action runs
});

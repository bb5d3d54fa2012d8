// OpenWhisk compatibility details the official JS client trips on (issue 16): zip actions sent
// without `binary`, package listing and deletion, and every list call with the query parameters
// the client sends (`public`, `count`, `skip`, `name`, `since`, `code`). Through Envoy, router,
// control plane and container proxies, with openwhisk@3.21.9 as users run it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';
import { zipOf } from './zip.mjs';

let stack;
let ow;

before(async () => {
  stack = await startStack();
  ow = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
});

after(async () => {
  await stack?.stop();
});

test('a nodejs zip created from a Buffer (no binary flag) runs its package.json main', async () => {
  const zip = zipOf({
    'package.json': JSON.stringify({ name: 'zipped', main: 'lib/entry.js' }),
    'lib/entry.js': "const { twice } = require('./util');\nexports.main = (p) => ({ n: twice(p.n), from: 'zip' });\n",
    'lib/util.js': 'exports.twice = (n) => n * 2;\n',
  });
  // The JS client sends exec.code = base64 of the Buffer, and no `binary`.
  const created = await ow.actions.create({ name: 'nodezip', action: zip });
  assert.equal(created.exec.binary, true);
  const got = await ow.actions.get({ name: 'nodezip' });
  assert.equal(got.exec.binary, true);
  assert.equal(got.exec.code, zip.toString('base64'));
  const listed = (await ow.actions.list()).find((a) => a.name === 'nodezip');
  assert.equal(listed.exec.binary, true);
  const result = await ow.actions.invoke({ name: 'nodezip', blocking: true, result: true, params: { n: 21 } });
  assert.deepEqual(result, { n: 42, from: 'zip' });
});

test('updating a zip action to source text (and back) runs the new code', async () => {
  const zip = zipOf({ 'index.js': "exports.main = () => ({ v: 'zip' });\n" });
  await ow.actions.create({ name: 'flip', action: zip });
  assert.deepEqual(await ow.actions.invoke({ name: 'flip', blocking: true, result: true }), { v: 'zip' });
  const text = await ow.actions.update({ name: 'flip', action: "function main() { return { v: 'text' }; }" });
  assert.equal(text.exec.binary, false);
  assert.deepEqual(await ow.actions.invoke({ name: 'flip', blocking: true, result: true }), { v: 'text' });
  const back = await ow.actions.update({ name: 'flip', action: zipOf({ 'index.js': "exports.main = () => ({ v: 'zip2' });\n" }) });
  assert.equal(back.exec.binary, true);
  assert.deepEqual(await ow.actions.invoke({ name: 'flip', blocking: true, result: true }), { v: 'zip2' });
});

test('a python zip with __main__.py, a helper module and a virtualenv folder', async () => {
  const zip = zipOf({
    '__main__.py':
      'from helper import greet\nimport vendored\n\ndef main(args):\n    return {"greeting": greet(args.get("name", "world")), "vendored": vendored.NAME}\n',
    'helper.py': 'def greet(name):\n    return "Hello from a zip, " + name + "!"\n',
    // Dependencies as `virtualenv virtualenv && pip install ...` leaves them.
    'virtualenv/bin/activate_this.py': '# not needed by this runtime\n',
    'virtualenv/lib/python3.11/site-packages/vendored/__init__.py': 'NAME = "from the virtualenv"\n',
  });
  const created = await ow.actions.create({ name: 'pyzip', kind: 'python:3', action: zip });
  assert.equal(created.exec.binary, true);
  const result = await ow.actions.invoke({ name: 'pyzip', blocking: true, result: true, params: { name: 'py' } });
  assert.deepEqual(result, { greeting: 'Hello from a zip, py!', vendored: 'from the virtualenv' });
});

test('package lists show binding false for plain packages and the binding for bindings', async () => {
  await ow.packages.create({ name: 'plainpkg' });
  await ow.packages.create({ name: 'boundpkg', package: { binding: { namespace: '_', name: 'plainpkg' } } });
  const list = await ow.packages.list();
  const plain = list.find((p) => p.name === 'plainpkg');
  const bound = list.find((p) => p.name === 'boundpkg');
  assert.equal(plain.binding, false);
  assert.deepEqual(bound.binding, { namespace: 'guest', name: 'plainpkg' });
});

test('deleting a non-empty package: 409 with OpenWhisk text, then force deletes it and its actions', async () => {
  await ow.packages.create({ name: 'full' });
  await ow.actions.create({ name: 'full/one', action: 'function main() { return { one: 1 }; }' });
  await ow.actions.create({ name: 'full/two', action: 'function main() { return { two: 2 }; }' });
  assert.deepEqual(await ow.actions.invoke({ name: 'full/one', blocking: true, result: true }), { one: 1 });
  await assert.rejects(ow.packages.delete({ name: 'full' }), (err) => {
    assert.equal(err.statusCode, 409);
    assert.equal(
      err.error.error,
      'Package not empty (contains 2 entities). Set force param or delete package contents.',
    );
    return true;
  });
  const deleted = await ow.packages.delete({ name: 'full', qs: { force: true } });
  assert.equal(deleted.name, 'full');
  await assert.rejects(ow.packages.get({ name: 'full' }), (err) => err.statusCode === 404);
  await assert.rejects(ow.actions.get({ name: 'full/one' }), (err) => err.statusCode === 404);
  await assert.rejects(ow.actions.invoke({ name: 'full/one', blocking: true }), (err) => err.statusCode === 404);
});

test('a kind this stack cannot run is refused at create with 400; defaults resolve', async () => {
  await assert.rejects(ow.actions.create({ name: 'gone', kind: 'go:1.17', action: 'package main' }), (err) => {
    assert.equal(err.statusCode, 400);
    assert.match(err.error.error, /^The request content was malformed:\nkind 'go:1\.17' not in Set\(/);
    return true;
  });
  await assert.rejects(ow.actions.create({ name: 'old', kind: 'nodejs:14', action: 'function main() {}' }), (err) => {
    assert.equal(err.statusCode, 400);
    assert.equal(
      err.error.error,
      "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action.",
    );
    return true;
  });
  const py = await ow.actions.create({ name: 'pydefault', kind: 'python:default', action: 'def main(a):\n    return {"k": "py"}\n' });
  assert.equal(py.exec.kind, 'python:3');
  assert.deepEqual(await ow.actions.invoke({ name: 'pydefault', blocking: true, result: true }), { k: 'py' });
  const info = await (await fetch(`${stack.apihost}/api/v1`)).json();
  assert.ok(info.runtimes.nodejs.some((r) => r.kind === 'nodejs:20' && r.default === true), JSON.stringify(info.runtimes));
});

test('invoking through a package binding merges package < binding < action < invoke parameters', async () => {
  const kv = (o) => Object.entries(o).map(([key, value]) => ({ key, value }));
  // guest publishes a package; another tenant binds it in their own namespace.
  await ow.packages.create({
    name: 'shared',
    package: { publish: true, parameters: kv({ p: 'package', q: 'package', r: 'package', s: 'package' }) },
  });
  await ow.actions.create({
    name: 'shared/echo',
    action: 'function main(params) { return params; }',
    params: { r: 'action', s: 'action' },
  });
  const key = stack.admin('user', 'create', 'binder').trim().split('\n').pop();
  const binder = openwhisk({ apihost: stack.apihost, api_key: key });
  await binder.packages.create({
    name: 'mine',
    package: { binding: { namespace: 'guest', name: 'shared' }, parameters: kv({ q: 'binding', r: 'binding' }) },
  });
  const invoke = () =>
    binder.actions.invoke({ name: 'mine/echo', blocking: true, result: true, params: { s: 'invoke' } });
  assert.deepEqual(await invoke(), { p: 'package', q: 'binding', r: 'action', s: 'invoke' });
  // The activation is the binder's, and names the binding, as OpenWhisk's records do.
  const [latest] = await binder.activations.list({ name: 'mine/echo', limit: 1, docs: true });
  assert.equal(latest.namespace, 'binder');
  assert.equal(latest.annotations.find((a) => a.key === 'binding')?.value, 'binder/mine');
  assert.equal(latest.annotations.find((a) => a.key === 'path')?.value, 'guest/shared/echo');

  // The binding's parameters change: the next invoke sees them (its containers held the old ones).
  await binder.packages.update({
    name: 'mine',
    package: { binding: { namespace: 'guest', name: 'shared' }, parameters: kv({ q: 'binding-2' }) },
  });
  assert.deepEqual(await invoke(), { p: 'package', q: 'binding-2', r: 'action', s: 'invoke' });
  // So does the bound action's code (its parameters are kept by the update).
  await ow.actions.update({ name: 'shared/echo', action: 'function main(params) { return { v: 2, ...params }; }' });
  assert.deepEqual(await invoke(), { v: 2, p: 'package', q: 'binding-2', r: 'action', s: 'invoke' });

  // A binding is its namespace's own: guest cannot invoke through it.
  await assert.rejects(
    ow.actions.invoke({ name: '/binder/mine/echo', blocking: true }),
    (e) => e.statusCode === 403 || e.statusCode === 404,
  );
  // Unpublished, the package is out of the binding's reach; deleted, the binding exposes nothing.
  await ow.packages.update({ name: 'shared', package: { publish: false } });
  await assert.rejects(invoke(), (e) => e.statusCode === 404);
  await ow.packages.update({ name: 'shared', package: { publish: true } });
  assert.equal((await invoke()).q, 'binding-2');
  await binder.packages.delete({ name: 'mine' });
  await assert.rejects(invoke(), (e) => e.statusCode === 404);
});

test('packages.list({public: true}): one\'s own namespace lists everything, another\'s only its published packages', async () => {
  await ow.packages.create({ name: 'listpub', package: { publish: true } });
  await ow.packages.create({ name: 'listpriv' });
  await ow.packages.create({ name: 'listbind', package: { publish: true, binding: { namespace: '_', name: 'listpub' } } });
  const mine = (await ow.packages.list({ public: true, limit: 200 })).map((p) => p.name);
  for (const name of ['listpub', 'listpriv', 'listbind']) assert.ok(mine.includes(name), mine.join(','));

  const key = stack.admin('user', 'create', 'lister').trim().split('\n').pop();
  const lister = openwhisk({ apihost: stack.apihost, api_key: key });
  const theirs = await lister.packages.list({ namespace: 'guest', public: true, limit: 200 });
  const names = theirs.map((p) => p.name);
  assert.ok(names.includes('listpub'), names.join(','));
  assert.ok(!names.includes('listpriv') && !names.includes('listbind'), names.join(','));
  assert.ok(theirs.every((p) => p.publish === true && p.binding === false && p.namespace === 'guest'), JSON.stringify(theirs));
  const { packages: n } = await lister.packages.list({ namespace: 'guest', count: true });
  assert.equal(n, theirs.length);
  // The lister's own namespace has nothing of guest's in it.
  assert.deepEqual(await lister.packages.list({ public: true }), []);
});

test('actions.list includes packaged actions; counts are after skip', async () => {
  await ow.packages.create({ name: 'lpkg' });
  await ow.actions.create({ name: 'lpkg/inside', action: 'function main() { return {}; }' });
  await ow.actions.create({ name: 'outside', action: 'function main() { return {}; }' });
  const listed = await ow.actions.list({ limit: 200 });
  const inside = listed.find((a) => a.name === 'inside');
  assert.equal(inside?.namespace, 'guest/lpkg', JSON.stringify(listed));
  assert.ok(listed.some((a) => a.name === 'outside'));
  const { actions: all } = await ow.actions.list({ count: true });
  assert.equal(all, listed.length);
  assert.deepEqual(await ow.actions.list({ count: true, skip: 1 }), { actions: all - 1 });
  const got = await ow.actions.get({ name: 'lpkg/inside', code: false });
  assert.equal(got.exec.code, undefined);
  assert.equal(got.exec.kind, 'nodejs:20');
});

test('namespaces.get() reads the whole namespace: actions, packages, and empty triggers and rules', async () => {
  const ns = await ow.namespaces.get();
  assert.ok(Array.isArray(ns.actions) && ns.actions.length > 0, JSON.stringify(ns));
  assert.ok(Array.isArray(ns.packages) && ns.packages.length > 0, JSON.stringify(ns));
  assert.deepEqual(ns.triggers, []);
  assert.deepEqual(ns.rules, []);
  assert.deepEqual(await ow.namespaces.list(), ['guest']);
});

test('activations.list filters by name as OpenWhisk keys records: action, package/action, since', async () => {
  await ow.packages.create({ name: 'apkg' });
  await ow.actions.create({ name: 'apkg/same', action: "function main() { return { where: 'package' }; }" });
  await ow.actions.create({ name: 'same', action: "function main() { return { where: 'root' }; }" });
  const since = Date.now();
  const { activationId: inPackage } = await ow.actions.invoke({ name: 'apkg/same', blocking: true });
  const { activationId: atRoot } = await ow.actions.invoke({ name: 'same', blocking: true });
  const ids = async (options) => (await ow.activations.list(options)).map((a) => a.activationId);
  const root = await eventually('the root record listed', async () => {
    const l = await ids({ name: 'same', since });
    return l.includes(atRoot) && l;
  });
  assert.deepEqual(root, [atRoot]);
  const packaged = await eventually('the packaged record listed', async () => {
    const l = await ids({ name: 'apkg/same', since });
    return l.includes(inPackage) && l;
  });
  assert.deepEqual(packaged, [inPackage]);
  assert.deepEqual(await ow.activations.list({ name: 'apkg/same', since, count: true }), { activations: 1 });
  await assert.rejects(ow.activations.list({ name: 'a/b/c' }), (err) => {
    assert.equal(err.statusCode, 400);
    assert.equal(
      err.error.error,
      "The query parameter 'name' was malformed:\nParameter may be a 'simple' name or 'package-name/simple' name: a/b/c",
    );
    return true;
  });
});

test('bindings: writes through one are refused; another namespace\'s binding or unshared package is a 403', async () => {
  await ow.packages.create({ name: 'blib', package: { publish: true } });
  await ow.actions.create({ name: 'blib/f', action: "function main() { return { f: 1 }; }" });
  await ow.packages.create({ name: 'balias', package: { publish: true, binding: { namespace: '_', name: 'blib' } } });
  await ow.packages.create({ name: 'bsecret' });
  for (const call of [() => ow.actions.delete({ name: 'balias/f' }), () => ow.actions.update({ name: 'balias/f', action: 'x' })]) {
    await assert.rejects(call(), (err) => {
      assert.equal(err.statusCode, 400);
      assert.equal(err.error.error, 'Operation not permitted on package binding.');
      return true;
    });
  }
  assert.deepEqual(await ow.actions.invoke({ name: 'blib/f', blocking: true, result: true }), { f: 1 });

  const key = stack.admin('user', 'create', 'outsider').trim().split('\n').pop();
  const outsider = openwhisk({ apihost: stack.apihost, api_key: key });
  assert.equal((await outsider.packages.get({ name: '/guest/blib' })).name, 'blib');
  await assert.rejects(outsider.packages.get({ name: '/guest/balias' }), (err) => err.statusCode === 403);
  for (const target of ['bsecret', 'balias', 'nosuch']) {
    await assert.rejects(
      outsider.packages.create({ name: `to${target}`, package: { binding: { namespace: 'guest', name: target } } }),
      (err) => {
        assert.equal(err.statusCode, 403);
        assert.equal(err.error.error, `The supplied authentication is not authorized to access 'guest/${target}'.`);
        return true;
      },
    );
  }
});

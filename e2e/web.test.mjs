// Web actions (issue 14): `/api/v1/web/{namespace}/{package|default}/{action}[.ext]`, called as a
// browser would (no credentials), through real Envoy, router, control plane and container proxies,
// with actions created by the official JS client (openwhisk@3.21.9).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';

let stack;
let ow;
let ns;

const web = (name, path = '', init = {}) => fetch(`${stack.apihost}/api/v1/web/${ns}/${name}${path}`, init);
const guestBasic = 'Basic ' + Buffer.from(GUEST_KEY).toString('base64');

const ECHO = `function main(params) { return { body: params }; }`;
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]);

before(async () => {
  stack = await startStack();
  ow = openwhisk({ apihost: stack.apihost, api_key: GUEST_KEY });
  ns = (await ow.namespaces.list())[0];
  const create = (name, action, annotations, extra = {}) =>
    ow.actions.create({ name, action, annotations, ...extra });
  await create('echo', ECHO, { 'web-export': true });
  await create('page', `function main({name = 'you'}) { return { body: '<p>hi ' + name + '</p>' }; }`, { 'web-export': true });
  await create('shaped', `function main() {
      return { statusCode: 201,
               headers: { 'Set-Cookie': ['a=1; Path=/', 'b=2; Path=/'], 'X-Custom': 7 },
               body: { made: true } }; }`, { 'web-export': true });
  await create('png', `function main() { return { headers: { 'content-type': 'image/png' }, body: '${PNG.toString('base64')}' }; }`,
    { 'web-export': true });
  await create('redirect', `function main() { return { statusCode: 302, headers: { location: '/elsewhere' } }; }`, { 'web-export': true });
  await create('fails', `function main() { return { error: { statusCode: 418, body: 'short and stout' } }; }`, { 'web-export': true });
  await create('crashes', `function main() { throw new Error('boom'); }`, { 'web-export': true });
  await create('raw', ECHO, { 'web-export': true, 'raw-http': true });
  await create('final', ECHO, { 'web-export': true, final: true }, { params: { fixed: 'set by the owner' } });
  await create('members', ECHO, { 'web-export': true, 'require-whisk-auth': true });
  await create('secret', ECHO, { 'web-export': true, 'require-whisk-auth': 's3cret' });
  await create('options', `function main(p) { return { statusCode: 204, headers: { 'access-control-allow-origin': 'https://mine.example', 'x-method': p.__ow_method } }; }`,
    { 'web-export': true, 'web-custom-options': true });
  await create('private', ECHO, {});
  await create('pyweb', 'def main(args):\n    return {"body": {"py": args.get("name"), "method": args["__ow_method"]}}\n',
    { 'web-export': true }, { kind: 'python:3' });
  await create('upper', `function main(p) { return { text: String(p.name || '').toUpperCase() }; }`, {});
  await create('wrap', `function main(p) { return { body: '<b>' + p.text + '</b>' }; }`, {});
  await ow.actions.create({ name: 'shout', sequence: [`/${ns}/upper`, `/${ns}/wrap`], annotations: { 'web-export': true } });
  await create('counter', `let n = 0;
    function main(p) { n += 1; return { headers: { 'cache-control': 'max-age=60' }, body: { n, q: p.q } }; }`, { 'web-export': true });
  await ow.packages.create({ name: 'site' });
  await create('site/home', ECHO, { 'web-export': true });
});

after(async () => {
  await stack?.stop();
});

test('the URL of an action the JS client created with web-export answers a browser without credentials', async () => {
  const got = await ow.actions.get({ name: 'page' });
  assert.equal(got.annotations.find((a) => a.key === 'web-export')?.value, true);
  const res = await fetch(`${stack.apihost}/api/v1/web/${ns}/default/${got.name}.html?name=Ada`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.equal(await res.text(), '<p>hi Ada</p>');
  assert.match(res.headers.get('x-openwhisk-activation-id'), /^[0-9a-f]{32}$/);
});

test('each extension answers the result its way, and a path projects into it', async () => {
  let res = await web('default/echo.json?x=1');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const json = await res.json();
  assert.equal(json.body.x, '1');
  assert.equal(json.body.__ow_method, 'get');
  res = await web('default/echo.json/body/x?x=projected');
  assert.equal(res.status, 400, 'a string is not valid application/json');
  assert.equal((await res.json()).error, "Response is not valid 'application/json'.");
  res = await web('default/echo.text/body/x?x=projected');
  assert.equal(await res.text(), 'projected');
  res = await web('default/echo.json/body/missing');
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error, 'Response does not include requested property.');
  res = await web('default/page.svg');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/svg+xml');
  res = await web('default/echo.html');
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, "Response is not valid 'text/html'.");
  // No extension is .http.
  res = await web('default/page');
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '<p>hi you</p>');
});

test('.http results set status, repeated headers, base64 bodies and redirects', async () => {
  let res = await web('default/shaped.http');
  assert.equal(res.status, 201);
  assert.deepEqual(res.headers.getSetCookie(), ['a=1; Path=/', 'b=2; Path=/']);
  assert.equal(res.headers.get('x-custom'), '7');
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(await res.json(), { made: true });
  res = await web('default/png');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
  res = await web('default/redirect', '', { redirect: 'manual' });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/elsewhere');
});

test('an application error is answered as its error field; a crash is OpenWhisk\'s 400', async () => {
  let res = await web('default/fails');
  assert.equal(res.status, 418);
  assert.equal(await res.text(), 'short and stout');
  res = await web('default/crashes');
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'There was an error processing your request.');
});

test('methods, headers, path, JSON and form bodies reach the action', async () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    // `.http` (an object body is sent as JSON): the path after the action is __ow_path.
    const res = await web('default/echo.http/some/path?q=query&b=from-query', '', {
      method,
      headers: { 'content-type': 'application/json', 'x-trace-me': 'yes' },
      body: JSON.stringify({ b: 'from-body', n: 2 }),
    });
    assert.equal(res.status, 200, method);
    const body = await res.json();
    assert.equal(body.__ow_method, method.toLowerCase());
    assert.equal(body.__ow_path, '/some/path');
    assert.equal(body.__ow_headers['x-trace-me'], 'yes');
    assert.equal(body.q, 'query');
    assert.equal(body.b, 'from-body', 'the body wins over the query');
    assert.equal(body.n, 2);
    assert.equal(body.__ow_user, undefined, 'no credentials, no __ow_user');
  }
  let res = await web('default/echo.json', '', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=Ada+Lovelace&lang=en',
  });
  let { body } = await res.json();
  assert.deepEqual([body.name, body.lang], ['Ada Lovelace', 'en']);
  res = await web('default/echo.json', '', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'just text' });
  assert.equal((await res.json()).body.__ow_body, 'just text');
  res = await web('default/echo.json', '', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: PNG });
  assert.equal((await res.json()).body.__ow_body, PNG.toString('base64'));
  res = await web('default/echo.json', '', { headers: { authorization: guestBasic } });
  assert.equal((await res.json()).body.__ow_user, ns);
  res = await web('default/echo', '', { method: 'HEAD' });
  assert.equal(res.status, 200);
});

test('a raw-http action gets the query string and the body untouched', async () => {
  const res = await web('default/raw.json?a=1&b=two', '', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"k":1}',
  });
  const { body } = await res.json();
  assert.equal(body.__ow_query, 'a=1&b=two');
  assert.equal(Buffer.from(body.__ow_body, 'base64').toString(), '{"k":1}');
  assert.equal(body.a, undefined);
  assert.equal(body.k, undefined);
});

test('final parameters and the __ow_ context cannot be set by a request', async () => {
  let res = await web('default/final.json');
  assert.equal((await res.json()).body.fixed, 'set by the owner');
  const reserved = 'Request defines parameters that are not allowed (e.g., reserved properties).';
  res = await web('default/final.json?fixed=mine');
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, reserved);
  res = await web('default/echo.json?__ow_user=admin');
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, reserved);
  res = await web('default/echo.json', '', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"__ow_path":"/x"}' });
  assert.equal(res.status, 400);
  res = await web('default/echo.json', '', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /^The request content was malformed/);
});

test('require-whisk-auth: a valid key, or the X-Require-Whisk-Auth secret', async () => {
  let res = await web('default/members.json');
  assert.equal(res.status, 401);
  res = await web('default/members.json', '', { headers: { authorization: 'Basic ' + Buffer.from('nobody:wrong').toString('base64') } });
  assert.equal(res.status, 401);
  res = await web('default/members.json', '', { headers: { authorization: guestBasic } });
  assert.equal(res.status, 200);
  res = await web('default/secret.json');
  assert.equal(res.status, 401);
  res = await web('default/secret.json', '', { headers: { 'x-require-whisk-auth': 'wrong' } });
  assert.equal(res.status, 401);
  res = await web('default/secret.json', '', { headers: { 'x-require-whisk-auth': 's3cret' } });
  assert.equal(res.status, 200);
  // A bearer token is the action's business, not a whisk credential.
  res = await web('default/echo.json', '', { headers: { authorization: 'Bearer abc' } });
  assert.equal((await res.json()).body.__ow_headers.authorization, 'Bearer abc');
});

test('CORS: OpenWhisk answers OPTIONS unless the action handles it', async () => {
  let res = await web('default/echo', '', { method: 'OPTIONS', headers: { 'access-control-request-headers': 'x-one, x-two' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('access-control-allow-methods'), 'OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH');
  assert.equal(res.headers.get('access-control-allow-headers'), 'x-one, x-two');
  assert.equal(res.headers.get('x-openwhisk-activation-id'), null, 'no activation for a preflight');
  res = await web('default/echo.json');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  res = await web('default/options', '', { method: 'OPTIONS' });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://mine.example');
  assert.equal(res.headers.get('x-method'), 'options');
});

test('python, sequence and packaged web actions', async () => {
  let res = await web('default/pyweb.json?name=snake');
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).body, { py: 'snake', method: 'get' });
  res = await web('default/shout.html?name=seq');
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '<b>SEQ</b>');
  res = await web('site/home.json?x=1');
  assert.equal(res.status, 200);
  assert.equal((await res.json()).body.x, '1');
});

test('what is not a web action, or names nothing, is OpenWhisk\'s 404 and reaches no container', async () => {
  for (const path of ['default/private.json', 'default/nothing.json', 'default/..', 'a%2Fb/echo.json', 'default/upper']) {
    const res = await web(path);
    assert.equal(res.status, 404, path);
    assert.equal((await res.json()).error, 'The requested resource does not exist.');
  }
  const res = await fetch(`${stack.apihost}/api/v1/web/nosuchnamespace/default/echo.json`);
  assert.equal(res.status, 404);
});

test('a web invoke is the owner\'s activation, listed and readable with their key', async () => {
  const res = await web('default/echo.json?mark=recorded');
  const id = res.headers.get('x-openwhisk-activation-id');
  // Records reach the store just after the answer.
  const record = await eventually('the record is stored', () => ow.activations.get({ name: id }).catch(() => null));
  assert.equal(record.namespace, ns);
  assert.equal(record.name, 'echo');
  assert.equal(record.response.result.body.mark, 'recorded');
});

test('a body over the payload limit gets OpenWhisk\'s 413, with or without a content-length', async () => {
  const big = Buffer.alloc(1_200_000, 97);
  const post = (body, extra = {}) =>
    web('default/echo.json', '', { method: 'POST', headers: { 'content-type': 'text/plain' }, body, ...extra });
  let res = await post(big);
  assert.equal(res.status, 413);
  assert.equal((await res.json()).error, 'Request larger than allowed: 1200000 > 1048576 bytes.');
  // Chunked: refused as soon as more than Envoy holds has come, not after a stalled upload.
  res = await post(new Blob([big]).stream(), { duplex: 'half' });
  assert.equal(res.status, 413);
  assert.match((await res.json()).error, /^Request larger than allowed: \d+ > 1048576 bytes\.$/);
  res = await post(new Blob([Buffer.alloc(1000, 97)]).stream(), { duplex: 'half' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).body.__ow_body.length, 1000);
});

test('a GET of an action that allows caching is answered from the cache, as a new activation', async () => {
  const get = async (path, init) => {
    const res = await web(`default/counter${path}`, '', init);
    assert.equal(res.status, 200);
    return { id: res.headers.get('x-openwhisk-activation-id'), body: await res.json() };
  };
  const first = await get('?q=a');
  const again = await get('?q=a');
  assert.deepEqual(again.body, first.body, 'the second GET is the cached answer');
  assert.notEqual(again.id, first.id, 'each answer is its own activation');
  const other = await get('?q=b');
  assert.notEqual(other.body.n, first.body.n, 'another query is another entry');
  const cookie = await get('?q=a', { headers: { cookie: 'session=1' } });
  assert.notEqual(cookie.body.n, first.body.n, 'cookies are part of the key');
  const posted = await get('?q=a', { method: 'POST' });
  assert.notEqual(posted.body.n, first.body.n, 'only GETs are cached');
  const record = await eventually('the cached activation is recorded', () =>
    ow.activations.get({ name: again.id }).catch(() => null));
  assert.equal(record.annotations.find((a) => a.key === 'cached')?.value, true);
});

// End to end: an action's resources end with it. Through the real stack (`whisk up`, local
// backend): an action allocating 1 GiB under a 128 MB limit is aborted with OpenWhisk's developer
// error and its container replaced, while one under its limit succeeds; children an action
// detached (its own session, or a double fork) die when the stack stops, and the proxies'
// temporary directories are removed — also after the whole stack was killed, by the next start.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openwhisk from 'openwhisk';
import { startStack, eventually, GUEST_KEY } from './stack.mjs';

// The stacks of this file use a temporary directory of their own (traversable by the actions'
// users), so the directories counted are theirs only.
const privateTmp = mkdtempSync(join(tmpdir(), 'whisk-e2e-tmp-'));
chmodSync(privateTmp, 0o755);
process.env.TMPDIR = privateTmp;

const ALLOCATE = `
function main(p) {
  const held = [];
  for (let i = 0; i < p.mb / 16; i++) held.push(Buffer.alloc(16 * 1024 * 1024, 1));
  return { mb: held.length * 16 };
}`;

const DETACH = `
const { spawn, execSync } = require('child_process');
function main() {
  const detached = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  detached.unref();
  const orphan = parseInt(execSync('setsid sleep 1000 >/dev/null 2>&1 & echo $!').toString());
  return { detached: detached.pid, orphan };
}`;

const alive = (pid) => {
  try {
    // A zombie is dead.
    return !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const whiskDirs = () =>
  readdirSync(privateTmp).filter((n) => n.startsWith('whisk-launchers-') || n.startsWith('whisk-action-'));

let stack;
let dataDir;
const client = (s) => openwhisk({ apihost: s.apihost, api_key: GUEST_KEY });

before(async () => {
  stack = await startStack();
});

after(async () => {
  await stack?.stop();
  rmSync(privateTmp, { recursive: true, force: true });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('an action over its memory limit is aborted, and one under it succeeds', async () => {
  const ow = client(stack);
  await ow.actions.create({ name: 'allocate', action: ALLOCATE, limits: { memory: 128 }, overwrite: true });
  await assert.rejects(
    ow.actions.invoke({ name: 'allocate', blocking: true, params: { mb: 1024 } }),
    (e) => {
      assert.equal(e.statusCode, 502);
      assert.equal(e.error.response.status, 'action developer error');
      assert.equal(e.error.response.result.error, 'The action exhausted its memory and was aborted.');
      return true;
    },
  );
  const ok = await ow.actions.invoke({ name: 'allocate', blocking: true, result: true, params: { mb: 32 } });
  assert.deepEqual(ok, { mb: 32 });
});

test('detached children and temporary directories end with the stack, even a killed one', async () => {
  const ow = client(stack);
  await ow.actions.create({ name: 'detach', action: DETACH, overwrite: true });
  const first = await ow.actions.invoke({ name: 'detach', blocking: true, result: true });
  assert.ok(alive(first.detached) && alive(first.orphan));
  assert.ok(whiskDirs().length > 0, 'the proxies made their directories here');

  // A stack stopped as the user stops it leaves nothing.
  dataDir = mkdtempSync(join(tmpdir(), 'whisk-e2e-'));
  await stack.stop();
  stack = undefined;
  await eventually('the detached children to die', () => !alive(first.detached) && !alive(first.orphan));
  assert.deepEqual(whiskDirs(), []);

  // A killed stack leaves them; the next start removes them.
  const killed = await startStack({ dataDir, keepData: true });
  const ow2 = client(killed);
  await ow2.actions.create({ name: 'detach', action: DETACH, overwrite: true });
  const second = await ow2.actions.invoke({ name: 'detach', blocking: true, result: true });
  process.kill(killed.pid, 'SIGKILL');
  await killed.stop();
  assert.ok(alive(second.detached) && alive(second.orphan), 'a killed stack cleans nothing');
  assert.ok(whiskDirs().length > 0);
  stack = await startStack({ dataDir });
  await eventually('the next start to sweep', () => !alive(second.detached) && !alive(second.orphan));
  const left = whiskDirs();
  // Only the new stack's proxies' directories (their pids are alive).
  assert.ok(left.every((n) => alive(Number(n.split('-')[2]))), `left: ${left}`);
});

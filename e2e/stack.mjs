// Starts the whole stack (`whisk up`) on free ports for a test file, and stops it afterwards.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';

export const GUEST_KEY =
  '23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP';

const WHISK = process.env.WHISK_BIN ?? new URL('../target/debug/whisk', import.meta.url).pathname;

/** Starts `whisk up --port 0`; resolves once it prints its ready line. */
export async function startStack({ flavour = 'gateway', dataDir, keepData = false } = {}) {
  const owned = !dataDir;
  dataDir ??= mkdtempSync(join(tmpdir(), 'whisk-e2e-'));
  const args = ['up', '--port', '0', '--data-dir', dataDir, '--flavour', flavour];
  if (process.env.WHISK_ENVOY) args.push('--envoy', process.env.WHISK_ENVOY);
  const child = spawn(WHISK, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('whisk up did not become ready in 120 s')), 120_000);
    child.once('exit', (code) => reject(new Error(`whisk up exited with ${code}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/^WHISK_UP_READY apihost=(\S+) admin=(\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ apihost: m[1], admin: m[2] });
      }
    });
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    ...ready,
    dataDir,
    /** The `whisk up` process: the supervisor (the control plane is its child). */
    pid: child.pid,
    /** The control plane's HTTP address (management and admin API). */
    adminUrl: ready.admin,
    /** Runs `whisk admin --controlplane <admin> --data-dir <dataDir> ...args` (the admin token is in
     * the data directory) and returns its stdout. */
    admin: (...rest) =>
      execFileSync(WHISK, ['admin', '--controlplane', ready.admin, '--data-dir', dataDir, ...rest], {
        encoding: 'utf8',
      }),
    async stop() {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
      if (owned && !keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function eventually(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last ?? ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

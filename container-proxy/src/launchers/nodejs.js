// Launcher for nodejs actions, embedded in whisk-container-proxy (protocol: src/launchers/mod.rs).
// stdin: one JSON message per line (first the init message, then /run messages);
// fd 3: one reply line per message; stdout/stderr: the action's logs, each run ended by the sentinel.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';
let action = null;

function reply(line) {
  let buf = Buffer.from(line + '\n');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(3, buf, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function errorText(err) {
  if (err instanceof Error) return err.toString();
  if (typeof err === 'string') return err;
  try { return JSON.stringify(err); } catch (_) { return String(err); }
}

function setEnv(vars) {
  for (const [k, v] of Object.entries(vars || {})) {
    process.env[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
}

function loadFromSource(code, main) {
  if (!/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(main)) {
    throw new Error(`invalid entry point '${main}'`);
  }
  const mod = { exports: {} };
  const file = path.join(process.cwd(), 'action.js');
  const body = `${code}\n;return (function(){ try { return ${main}; } catch (e) { return undefined; } })();`;
  const fn = new Function('require', 'module', 'exports', '__filename', '__dirname', body);
  const found = fn(require, mod, mod.exports, file, path.dirname(file));
  if (typeof found === 'function') return found;
  if (mod.exports && typeof mod.exports[main] === 'function') return mod.exports[main];
  if (typeof mod.exports === 'function') return mod.exports;
  throw new Error(`Action entrypoint '${main}' is not a function.`);
}

function loadFromDir(dir, main) {
  const mod = require(dir);
  if (mod && typeof mod[main] === 'function') return mod[main];
  if (typeof mod === 'function' && main === 'main') return mod;
  throw new Error(`Action entrypoint '${main}' is not a function.`);
}

function init(msg) {
  try {
    setEnv(msg.env);
    const main = msg.main || 'main';
    action = msg.dir ? loadFromDir(msg.dir, main) : loadFromSource(msg.code || '', main);
    reply(JSON.stringify({ ok: true }));
  } catch (e) {
    reply(JSON.stringify({ error: `Initialization has failed due to: ${errorText(e)}` }));
  }
}

const owKeys = new Set();
function runEnv(msg) {
  for (const k of owKeys) delete process.env[k];
  owKeys.clear();
  delete process.env.TRACEPARENT;
  for (const [k, v] of Object.entries(msg)) {
    if (k === 'value') continue;
    if (k === 'traceparent') {
      process.env.TRACEPARENT = String(v);
      continue;
    }
    const name = `__OW_${k.toUpperCase()}`;
    process.env[name] = typeof v === 'string' ? v : JSON.stringify(v);
    owKeys.add(name);
  }
}

async function run(msg) {
  let line;
  try {
    if (!action) {
      line = '503 ' + JSON.stringify({ error: 'System not initialized.' });
    } else {
      runEnv(msg);
      const result = await action(msg.value);
      if (result !== null && typeof result === 'object') {
        line = JSON.stringify(result);
      } else {
        line = '502 ' + JSON.stringify({ error: 'The action did not return a dictionary.' });
      }
    }
  } catch (e) {
    line = '502 ' + JSON.stringify({ error: `An error has occurred: ${errorText(e)}` });
  }
  reply(line);
  process.stdout.write(SENTINEL + '\n');
  process.stderr.write(SENTINEL + '\n');
}

async function loop() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let initialised = false;
  for await (const text of rl) {
    if (!text.trim()) continue;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      reply('400 ' + JSON.stringify({ error: `bad message: ${errorText(e)}` }));
      continue;
    }
    if (!initialised) {
      initialised = true;
      init(msg);
    } else {
      await run(msg);
    }
  }
  process.exit(0);
}

process.on('unhandledRejection', (e) => { console.error('Unhandled rejection:', errorText(e)); });
loop();

// test/browser/test.mjs: the demo page (demo/, client/livenotify.js) in headless Chromium
// against a real livenotifyd and a private cluster.  Started by test/browser/run.sh, which
// creates the cluster and the registered api_notification table and passes them here; this
// script starts (and kills, and restarts) the daemon and the demo server itself.
//
// Each check prints `ok NAME` or `FAILED NAME: why`; the last line is `N passed, N failed`.
// Besides what the page shows, every WebSocket frame each tab receives is recorded from the
// browser's side (Playwright's websocket events), so a duplicate or a frame for the wrong
// user is caught even where the page would hide it (the page keys its rows by id).
import { spawn, execFile } from 'node:child_process';
import { appendFileSync, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const { values: opt } = parseArgs({
  options: {
    daemon: { type: 'string' },
    dsn: { type: 'string' },
    psql: { type: 'string' },
    'cluster-dir': { type: 'string' },
    port: { type: 'string' },
    db: { type: 'string' },
    workdir: { type: 'string' },
    screenshot: { type: 'string' },
    root: { type: 'string' },
    'pg-bin': { type: 'string' },
  },
});

const SECRET = 'browser-test-secret-not-for-production';
const ALICE = 1;
const BOB = 2;
// The promise: a committed row is on screen within a second.
const DELIVERY_MS = 1000;
// A restarted daemon is found again within the demo's largest backoff (5 s) plus margin.
const RECONNECT_MS = 20000;
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let passed = 0;
let failed = 0;
const pidfile = path.join(opt.workdir, 'pids');

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// No single check may hang the suite: each gets TEST_TIMEOUT_MS.
const TEST_TIMEOUT_MS = 60000;
async function test(name, fn) {
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
    })]);
    clearTimeout(timer);
    passed++;
    console.log(`ok ${name}`);
  } catch (err) {
    clearTimeout(timer);
    failed++;
    console.log(`FAILED ${name}: ${err instanceof Failure ? err.message : err.stack}`);
  }
}

// ------------------------------------------------------------------ processes

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHttp(url, proc, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return true;
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  return false;
}

function start(name, cmd, args, env) {
  const log = openSync(path.join(opt.workdir, `${name}.log`), 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', log, log], env: { ...cleanEnv(), ...env } });
  appendFileSync(pidfile, `${proc.pid}\n`);
  return proc;
}

// Only the settings given here: no PG* or LIVENOTIFY_* from the caller reach the children.
function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('PG') || k.startsWith('LIVENOTIFY_')) delete env[k];
  }
  return env;
}

const stack = { daemon: null, daemonPort: 0, web: null, webPort: 0 };

async function startDaemon() {
  const origins = `http://127.0.0.1:${stack.webPort}`;
  stack.daemon = start('livenotifyd', opt.daemon, [
    '--listen-address=127.0.0.1', `--port=${stack.daemonPort}`, '--auth=jwt',
    `--allowed-origins=${origins}`, `--database-url=${opt.dsn}`, '--log-level=debug',
    // demo/server.py's tokens name livenotifyd in aud; no metrics listener (nothing scrapes
    // it here, and the default port could be another test's).
    '--jwt-audience=livenotify', '--metrics-listen=off',
    // Sockets close 4001 at exp + leeway: 1 s keeps the token-expiry test short.
    '--jwt-leeway-s=1',
  ], { LIVENOTIFY_JWT_SECRET: SECRET });
  check(await waitHttp(`http://127.0.0.1:${stack.daemonPort}/healthz`, stack.daemon),
    `livenotifyd did not become healthy on port ${stack.daemonPort} (see ${opt.workdir})`);
}

async function startStack() {
  stack.daemonPort = await freePort();
  stack.webPort = await freePort();
  stack.web = start('demo-server', '/usr/bin/python3', [
    path.join(opt.root, 'demo/server.py'), '--listen=127.0.0.1', `--port=${stack.webPort}`,
    `--dsn=${opt.dsn}`, `--ws-port=${stack.daemonPort}`,
  ], { LIVENOTIFY_JWT_SECRET: SECRET });
  check(await waitHttp(`http://127.0.0.1:${stack.webPort}/healthz`, stack.web),
    'the demo server did not start');
  await startDaemon();
}

function stopProc(proc, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}

async function psql(sql) {
  const { stdout } = await run(opt.psql, [
    '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', opt['cluster-dir'], '-p', opt.port,
    '-U', 'postgres', '-d', opt.db, '-c', sql,
  ]);
  return stdout.trim();
}

async function insert(user, title, type = 'like') {
  const id = await psql(
    `INSERT INTO api_notification (user_id, type, title, message) ` +
    `VALUES (${user}, '${type}', '${title.replace(/'/g, "''")}', 'from psql') RETURNING id`);
  return Number(id);
}

async function unreadInDb(user) {
  return Number(await psql(
    `SELECT count(*) FROM api_notification WHERE user_id = ${user} AND NOT is_read`));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// While a test takes the daemon or the database away on purpose, a failed request is the
// expected outcome, not a page bug: remember those periods (plus a margin for stragglers).
const disruptions = [];
function disrupt() {
  const d = { from: Date.now(), to: Infinity };
  disruptions.push(d);
  return () => { d.to = Date.now() + 3000; };
}
const disrupted = (t) => disruptions.some((d) => t >= d.from && t <= d.to);

// ------------------------------------------------------------------ pages

// One tab: the page plus every frame its WebSocket received, seen from the browser.
async function openTab(context, user, label) {
  const page = await context.newPage();
  const tab = { page, user, label, frames: [], sent: [], errors: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', ({ payload }) => {
      try {
        tab.sent.push(JSON.parse(payload));
      } catch {
        tab.sent.push({ type: '(not json)', payload });
      }
    });
    ws.on('framereceived', ({ payload }) => {
      try {
        tab.frames.push(JSON.parse(payload));
      } catch {
        tab.frames.push({ type: '(not json)', payload });
      }
    });
  });
  page.on('pageerror', (err) => tab.errors.push({ at: Date.now(), text: String(err) }));
  page.on('console', (msg) => {
    if (msg.type() === 'error') tab.errors.push({ at: Date.now(), text: msg.text() });
  });
  await page.goto(`http://127.0.0.1:${stack.webPort}/?user=${user}`);
  await waitState(tab, 'open', 10000);
  return tab;
}

function waitState(tab, state, timeout) {
  return tab.page.waitForSelector(`#state[data-state="${state}"]`, { timeout });
}

const badge = (tab) => tab.page.$eval('#badge', (el) => Number(el.textContent));
const rowCount = (tab, id) => tab.page.$$eval(`#list li[data-id="${id}"]`, (els) => els.length);
const notificationFrames = (tab, id) =>
  tab.frames.filter((f) => f.type === 'notification' && f.id === id).length;

function waitBadge(tab, n, timeout) {
  return tab.page.waitForFunction(
    (want) => document.getElementById('badge').textContent === String(want), n, { timeout });
}

function waitRow(tab, id, timeout) {
  return tab.page.waitForSelector(`#list li[data-id="${id}"]`, { timeout });
}

// ------------------------------------------------------------------ the tests

async function main() {
  mkdirSync(opt.workdir, { recursive: true });
  await startStack();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
  });
  try {
    await scenario(browser);
  } finally {
    await browser.close();
    await stopProc(stack.daemon);
    await stopProc(stack.web);
  }
}

async function scenario(browser) {
  // Two contexts: alice's two tabs share a profile (as two tabs of one browser do), bob
  // has his own.
  const ctxA = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const ctxB = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  let a1, a2, b1;

  await test('pages connect (two tabs of alice, one of bob)', async () => {
    [a1, a2, b1] = await Promise.all([
      openTab(ctxA, ALICE, 'alice#1'), openTab(ctxA, ALICE, 'alice#2'), openTab(ctxB, BOB, 'bob'),
    ]);
    for (const t of [a1, a2, b1]) {
      const hello = t.frames.find((f) => f.type === 'hello');
      check(hello && hello.user === String(t.user), `${t.label}: hello for user ${t.user}, got ${JSON.stringify(hello)}`);
      check(await badge(t) === await unreadInDb(t.user), `${t.label}: initial badge`);
    }
  });
  if (!a1 || !a2 || !b1) {
    console.log('FAILED: the pages did not connect; skipping the rest');
    return;
  }

  let liveId;
  await test('a psql INSERT appears in both of alice\'s tabs within a second, with the right badge', async () => {
    liveId = await insert(ALICE, 'Live from psql');
    const t0 = Date.now();
    await Promise.all([a1, a2].map((t) => waitRow(t, liveId, DELIVERY_MS).catch(() => {
      throw new Failure(`${t.label}: row ${liveId} not shown ${DELIVERY_MS} ms after the INSERT committed`);
    })));
    const elapsed = Date.now() - t0;
    const want = await unreadInDb(ALICE);
    for (const t of [a1, a2]) {
      check(await badge(t) === want, `${t.label}: badge ${await badge(t)}, database says ${want}`);
      check(await rowCount(t, liveId) === 1, `${t.label}: row ${liveId} shown ${await rowCount(t, liveId)} times`);
    }
    console.log(`   (on screen in both tabs ${elapsed} ms after psql returned)`);
  });

  await test('bob never sees alice\'s row', async () => {
    // The queue is ordered: once bob's own later row is on his page, a frame wrongly sent to
    // him for alice's row would already have arrived.
    const marker = await insert(BOB, 'For bob');
    await waitRow(b1, marker, DELIVERY_MS * 3);
    check(await rowCount(b1, liveId) === 0, 'alice\'s row is on bob\'s page');
    check(b1.frames.every((f) => f.type !== 'notification' || f.notification.user_id === BOB),
      `bob received a frame for another user: ${JSON.stringify(b1.frames.filter((f) => f.type === 'notification' && f.notification.user_id !== BOB))}`);
    check(await badge(b1) === await unreadInDb(BOB), 'bob\'s badge');
    for (const t of [a1, a2]) check(notificationFrames(t, marker) === 0, `${t.label} got bob's row`);
  });

  await test('mark as read in one tab updates the badge in both of alice\'s tabs', async () => {
    const bobBefore = await badge(b1);
    const before = await unreadInDb(ALICE);
    check(before > 0, 'nothing unread to mark');
    await a1.page.click(`#list li[data-id="${liveId}"] button.mark-read`);
    await Promise.all([a1, a2].map((t) => waitBadge(t, before - 1, DELIVERY_MS * 2).catch(() => {
      throw new Failure(`${t.label}: badge did not go from ${before} to ${before - 1}`);
    })));
    check(await unreadInDb(ALICE) === before - 1, 'the database disagrees');
    // The other tab learns which row was read by refetching after the count frame.
    await a2.page.waitForSelector(`#list li.read[data-id="${liveId}"]`, { timeout: 3000 });
    check(await badge(b1) === bobBefore, 'bob\'s badge changed');
  });

  await test('an ephemeral new_message pops up in alice\'s tabs only', async () => {
    await psql(`SELECT livenotify.send('${ALICE}', 'new_message', '{"message": {"from": "bob", "text": "lunch?"}}')`);
    for (const t of [a1, a2]) {
      await t.page.waitForSelector('.toast:has-text("lunch?")', { timeout: DELIVERY_MS * 2 });
    }
    const marker = await insert(BOB, 'Marker for bob');
    await waitRow(b1, marker, DELIVERY_MS * 3);
    check(!b1.frames.some((f) => f.type === 'new_message'), 'bob received alice\'s new_message');
  });

  await test('after kill -9 and a restart of livenotifyd the tabs reconnect and show the rows inserted meanwhile, once each', async () => {
    const before = Object.fromEntries([a1, a2, b1].map((t) => [t.label, t.frames.length]));
    const sentBefore = Object.fromEntries([a1, a2, b1].map((t) => [t.label, t.sent.length]));
    // The cursor of the last notification each tab got: the client resumes with it.
    const lastCursor = Object.fromEntries([a1, a2, b1].map((t) => [t.label,
      t.frames.filter((f) => f.type === 'notification').map((f) => f.cursor).pop()]));
    const restored = disrupt();
    await stopProc(stack.daemon, 'SIGKILL');
    await Promise.all([a1, a2, b1].map((t) => t.page.waitForFunction(
      () => document.getElementById('state').dataset.state !== 'open', null, { timeout: 5000 })));
    const down = [];
    for (let i = 1; i <= 3; i++) down.push(await insert(ALICE, `While the daemon was down #${i}`));
    const bobDown = await insert(BOB, 'Bob, while the daemon was down');
    await startDaemon();
    await Promise.all([a1, a2, b1].map((t) => waitState(t, 'open', RECONNECT_MS).catch(() => {
      throw new Failure(`${t.label} did not reconnect within ${RECONNECT_MS} ms`);
    })));
    restored();
    for (const t of [a1, a2]) {
      const auth = t.sent.slice(sentBefore[t.label]).find((m) => m.type === 'auth');
      check(typeof lastCursor[t.label] === 'string', `${t.label}: notification frames carry no cursor`);
      check(auth && auth.cursor === lastCursor[t.label],
        `${t.label}: the reconnect's auth message has cursor ${auth && auth.cursor}, ` +
        `the last frame had ${lastCursor[t.label]}`);
    }
    for (const t of [a1, a2]) {
      for (const id of down) {
        await waitRow(t, id, 5000).catch(() => {
          throw new Failure(`${t.label}: row ${id} (inserted while down) not shown after the reconnect`);
        });
      }
    }
    await waitRow(b1, bobDown, 5000);
    // Once each: on the page, and on the wire since the kill.
    for (const t of [a1, a2]) {
      const resynced = t.frames.slice(before[t.label]).filter((f) => f.type === 'resync');
      for (const id of down) {
        check(await rowCount(t, id) === 1, `${t.label}: row ${id} shown ${await rowCount(t, id)} times`);
        const n = notificationFrames(t, id);
        check(n <= 1, `${t.label}: row ${id} arrived in ${n} frames`);
        // Replay by catch-up is the normal path; a resync (refetch) is the protocol's fallback.
        check(n === 1 || resynced.length > 0,
          `${t.label}: row ${id} neither replayed nor announced by a resync`);
        if (n === 0) {
          console.log(`   note: ${t.label} got row ${id} by refetching after resync ` +
            `${JSON.stringify(resynced.map((f) => f.reason))}, not by catch-up`);
        }
      }
      check(await badge(t) === await unreadInDb(ALICE), `${t.label}: badge ${await badge(t)} after the reconnect`);
    }
    check(down.every((id) => notificationFrames(b1, id) === 0), 'bob received alice\'s replayed rows');
    check(a1.frames.length > before[a1.label], 'no frames after the reconnect');
    // And live delivery works again on the new daemon.
    const after = await insert(ALICE, 'Live again');
    await Promise.all([a1, a2].map((t) => waitRow(t, after, DELIVERY_MS)));
  });

  await test('SIGTERM: the tabs see 1001 and reconnect to the restarted daemon', async () => {
    const states = [];
    await a1.page.exposeFunction('__recordState', (s) => states.push(s));
    await a1.page.evaluate(() => window.livenotifyDemo.client.on('state', (e) => window.__recordState(e)));
    const restored = disrupt();
    await stopProc(stack.daemon, 'SIGTERM');
    await startDaemon();
    await waitState(a1, 'open', RECONNECT_MS);
    restored();
    check(states.some((s) => s.state === 'reconnecting' && s.code === 1001),
      `no reconnect after close code 1001: ${JSON.stringify(states)}`);
    const id = await insert(ALICE, 'After SIGTERM');
    await waitRow(a1, id, DELIVERY_MS);
  });

  await test('a PostgreSQL restart: the tabs stay connected, get resync and refetch; rows flow again', async () => {
    const resyncs = a1.frames.filter((f) => f.type === 'resync').length;
    const fetches = [];
    const onRequest = (req) => { if (req.url().includes('/api/notifications')) fetches.push(req.url()); };
    a1.page.on('request', onRequest);
    const restored = disrupt();
    // -l: without a log file the new postmaster keeps our stdout pipe open, and this waits forever.
    await run('runuser', ['-u', 'postgres', '--', path.join(opt['pg-bin'], 'pg_ctl'), '-D',
      path.join(opt['cluster-dir'], 'data'), '-l', path.join(opt['cluster-dir'], 'log/postgresql.log'),
      '-m', 'fast', '-w', '-t', '60', 'restart'], { cwd: '/tmp', timeout: 90000 });
    // The daemon notices the new queue once it is back on the database.
    await a1.page.waitForFunction(
      (n) => window.livenotifyDemo.frames.filter((f) => f.type === 'resync').length > n,
      resyncs, { timeout: 30000 }).catch(() => {
      throw new Failure(`no resync frame after the restart: ${JSON.stringify(a1.frames.slice(-5))}`);
    });
    const frame = a1.frames.filter((f) => f.type === 'resync').at(-1);
    restored();
    check(frame.reason === 'epoch', `resync reason ${frame.reason}, expected epoch`);
    check(await a1.page.$eval('#state', (el) => el.dataset.state) === 'open', 'the tab is not open');
    await sleep(300);
    check(fetches.length > 0, 'the page did not refetch after resync');
    a1.page.off('request', onRequest);
    // Rows committed after the restart are delivered live.
    let id;
    const deadline = Date.now() + 15000;
    for (;;) {
      id = await insert(ALICE, 'After a PostgreSQL restart');
      try {
        await Promise.all([a1, a2].map((t) => waitRow(t, id, 2000)));
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Failure(`row ${id} not delivered after the restart`);
      }
    }
    for (const t of [a1, a2]) check(await badge(t) === await unreadInDb(ALICE), `${t.label}: badge after the restart`);
  });

  await test('a refused token closes with 1008 and the client stops instead of looping', async () => {
    const page = await ctxB.newPage();
    await page.goto(`http://127.0.0.1:${stack.webPort}/healthz`);
    const result = await page.evaluate(async (port) => {
      const { LiveNotifyClient } = await import('/livenotify.js');
      const events = [];
      let opens = 0;
      const client = new LiveNotifyClient({ url: `ws://127.0.0.1:${port}/ws`, token: 'not-a-jwt', minDelayMs: 50 });
      client.on('state', (e) => {
        events.push(e);
        if (e.state === 'connecting' || e.state === 'reconnecting') opens++;
      });
      const errors = [];
      client.on('error', (e) => errors.push(e));
      client.connect();
      await new Promise((r) => setTimeout(r, 2500));
      return { events, errors, state: client.state };
    }, stack.daemonPort);
    await page.close();
    check(result.state === 'closed', `state ${result.state}: ${JSON.stringify(result.events)}`);
    check(result.errors.length === 1 && result.errors[0].kind === 'auth' && result.errors[0].code === 1008,
      `errors: ${JSON.stringify(result.errors)}`);
  });

  await test('a getToken() that keeps giving refused tokens is retried with growing delays', async () => {
    const page = await ctxB.newPage();
    await page.goto(`http://127.0.0.1:${stack.webPort}/healthz`);
    const result = await page.evaluate(async (port) => {
      const { LiveNotifyClient } = await import('/livenotify.js');
      let calls = 0;
      const delays = [];
      const client = new LiveNotifyClient({
        url: `ws://127.0.0.1:${port}/ws`, getToken: () => { calls++; return 'not-a-jwt'; },
        minDelayMs: 100, maxDelayMs: 1600,
      });
      client.on('state', (e) => { if (e.delayMs != null) delays.push(e.delayMs); });
      client.connect();
      await new Promise((r) => setTimeout(r, 3000));
      client.close();
      return { calls, delays, state: client.state };
    }, stack.daemonPort);
    await page.close();
    // Without backoff a refused token costs one round trip (a few ms): hundreds of calls.
    check(result.calls >= 2 && result.calls <= 12, `getToken() called ${result.calls} times in 3 s: ${JSON.stringify(result.delays)}`);
    check(result.state === 'closed', `state ${result.state} after close()`);
  });

  await test('an expired token: close 4001, getToken() gives a new one, the client resumes', async () => {
    const page = await ctxB.newPage();
    await page.goto(`http://127.0.0.1:${stack.webPort}/healthz`);
    // Resume from the newest row: the gap's row is then the only one to replay.
    const newest = Number(await psql('SELECT coalesce(max(id), 0) FROM api_notification'));
    const result = await page.evaluate(async ([port, user, lastId]) => {
      const { LiveNotifyClient } = await import('/livenotify.js');
      let calls = 0;
      const hellos = [];
      const errors = [];
      const rows = [];
      let inserted = null;
      // Tokens valid for 2 s: the daemon closes the socket at exp + 1 s (its leeway).
      const getToken = async () => {
        calls++;
        return (await (await fetch(`/api/token?user=${user}&ttl=2`)).json()).token;
      };
      const client = new LiveNotifyClient({
        url: `ws://127.0.0.1:${port}/ws`, getToken, lastId, stableAfterMs: 500,
      });
      client.on('hello', () => hellos.push(Date.now()));
      client.on('notification', (f) => rows.push(f.id));
      client.on('error', async (e) => {
        errors.push({ kind: e.kind, code: e.code, reason: e.reason, at: Date.now() });
        // A row committed while the socket is down: the resume must bring it, once.
        if (e.kind === 'token_expired' && inserted === null) {
          inserted = 0;
          const r = await fetch('/api/notifications', {
            method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ user_id: user, type: 'like', title: 'while the token expired' }),
          });
          inserted = (await r.json()).id;
        }
      });
      client.connect();
      const t0 = Date.now();
      while (Date.now() - t0 < 8000 && !(hellos.length >= 2 && inserted && rows.includes(inserted))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const state = client.state;
      client.close();
      return { calls, hellos: hellos.map((t) => t - t0), errors, rows, inserted, state };
    }, [stack.daemonPort, BOB, newest]);
    await page.close();
    const expired = result.errors.filter((e) => e.kind === 'token_expired');
    check(expired.length >= 1 && expired[0].code === 4001 && expired[0].reason === 'token expired',
      `no 4001 "token expired": ${JSON.stringify(result)}`);
    check(result.hellos.length >= 2 && result.calls >= 2, `no reconnect with a new token: ${JSON.stringify(result)}`);
    check(result.errors.every((e) => e.kind === 'token_expired'), `other errors: ${JSON.stringify(result.errors)}`);
    check(result.rows.filter((id) => id === result.inserted).length === 1,
      `the row of the gap (${result.inserted}) not delivered exactly once: ${JSON.stringify(result.rows)}`);
    check(result.state === 'open', `state ${result.state}`);
  });

  await test('heartbeat: the client pings a quiet connection and stays open on pong', async () => {
    const page = await ctxA.newPage();
    await page.goto(`http://127.0.0.1:${stack.webPort}/healthz`);
    const result = await page.evaluate(async (port) => {
      const { LiveNotifyClient } = await import('/livenotify.js');
      const token = (await (await fetch('/api/token?user=1')).json()).token;
      const states = [];
      let pongs = 0;
      const client = new LiveNotifyClient({
        url: `ws://127.0.0.1:${port}/ws`, token, lastId: 1e9, heartbeatMs: 200, heartbeatTimeoutMs: 500,
      });
      client.on('state', (e) => states.push(e.state));
      client.on('*', (f) => { if (f.type === 'pong') pongs++; });
      client.connect();
      await new Promise((r) => setTimeout(r, 1800));
      const state = client.state;
      client.close();
      return { pongs, states, state };
    }, stack.daemonPort);
    await page.close();
    check(result.state === 'open' && result.pongs >= 3,
      `state ${result.state}, ${result.pongs} pongs, states ${JSON.stringify(result.states)}`);
    check(!result.states.includes('reconnecting'), `reconnected: ${JSON.stringify(result.states)}`);
  });

  await test('no errors in the pages\' consoles', async () => {
    const errs = [a1, a2, b1].flatMap((t) => t.errors.filter((e) => !disrupted(e.at))
      .map((e) => `${t.label}: ${e.text}`));
    check(errs.length === 0, errs.join('\n'));
  });

  if (opt.screenshot) {
    await test('screenshot', async () => {
      await insert(ALICE, 'Carol commented on your post', 'comment');
      await psql(`SELECT livenotify.send('${ALICE}', 'new_message', '{"message": {"from": "bob", "text": "Are you free at 3?"}}')`);
      await a1.page.waitForSelector('.toast:has-text("free at 3")', { timeout: 3000 });
      await a1.page.bringToFront();
      await a1.page.screenshot({ path: opt.screenshot });
    });
  }
}

// Interrupted (Ctrl-C, run.sh's trap): stop our children and go; without this the process
// would wait on whatever it was awaiting once Playwright has closed the browser.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const p of [stack.daemon, stack.web]) if (p && p.exitCode === null) p.kill('SIGTERM');
    console.log(`interrupted (${sig}); ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  });
}

main()
  .catch((err) => {
    failed++;
    console.log(`FAILED setup: ${err instanceof Failure ? err.message : err.stack}`);
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });

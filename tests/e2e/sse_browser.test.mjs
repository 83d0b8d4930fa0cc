// A real browser's EventSource: headless Chromium (Debian's chromium package, driven through
// playwright-core) opens a page served by this test, whose script follows a workspace's stream
// with ?access_token= (EventSource cannot set headers) and writes each event into the DOM.  The
// page and the API share one origin: this test's little server serves the page and passes /v1/
// through to switchboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { createDb, dropDb, newId, startServer, append, streamPath } from './sse_support.mjs';

const DB_NAME = 'e2e_sse_browser';
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const WS = newId();
let db;
let srv;
let web;

const page = (ws) => `<!doctype html>
<html><head><meta charset="utf-8"><title>switchboard live</title></head>
<body>
<p id="state">connecting</p>
<ol id="events"></ol>
<script>
  window.received = [];
  const es = new EventSource('${streamPath(ws)}?access_token=member-token');
  es.onopen = () => { document.getElementById('state').textContent = 'open'; };
  es.onerror = () => { document.getElementById('state').textContent = 'error'; };
  es.addEventListener('ContactUpdated', (e) => {
    const ev = JSON.parse(e.data);
    window.received.push({ id: e.lastEventId, position: ev.position, stream: ev.stream, seq: ev.data.seq });
    const li = document.createElement('li');
    li.dataset.position = String(ev.position);
    li.textContent = ev.type + ' ' + ev.stream;
    document.getElementById('events').appendChild(li);
  });
</script>
</body></html>`;

before(async () => {
  db = createDb(DB_NAME);
  srv = await startServer({ db, tokens: { 'member-token': [WS] } });
  web = http.createServer((req, res) => {
    if (req.url.startsWith('/v1/')) {
      const up = http.request(
        { host: '127.0.0.1', port: srv.port, path: req.url, method: req.method, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
      res.on('close', () => up.destroy());
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(WS));
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
});

after(async () => {
  if (web) {
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  }
  const code = srv ? await srv.stop() : 0;
  dropDb(DB_NAME);
  assert.equal(code, 0, `server exit status\n${srv ? srv.log().slice(-4000) : ''}`);
});

test('headless Chromium receives events live through its native EventSource', async () => {
  assert.ok(fs.existsSync(CHROMIUM), `no ${CHROMIUM}: scripts/deps.sh test installs Debian's chromium`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-chromium-'));
  // The profile directory is ours (--user-data-dir), so nothing is shared with other runs.
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const p = ctx.pages()[0] || (await ctx.newPage());
    await p.goto(`http://127.0.0.1:${web.address().port}/`);
    await p.waitForFunction(() => document.getElementById('state').textContent === 'open', null, { timeout: 20000 });
    // Appended after the page is open: these can only arrive live.
    const first = await append(db, WS, { count: 5 });
    await p.waitForFunction(() => window.received.length >= 5, null, { timeout: 20000 });
    const second = await append(db, WS, { count: 5, 'new-streams': 2 });
    await p.waitForFunction(() => window.received.length >= 10, null, { timeout: 20000 });
    const got = await p.evaluate(() => window.received);
    const want = [...first, ...second];
    assert.deepEqual(
      got.map((e) => e.position),
      want.map((e) => e.position),
    );
    assert.deepEqual(
      got.map((e) => Number(e.id)),
      want.map((e) => e.position),
    );
    assert.deepEqual(
      got.map((e) => e.stream),
      want.map((e) => e.stream),
    );
    // And the page shows them.
    const shown = await p.$$eval('#events li', (lis) => lis.map((li) => Number(li.dataset.position)));
    assert.deepEqual(shown, want.map((e) => e.position));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});

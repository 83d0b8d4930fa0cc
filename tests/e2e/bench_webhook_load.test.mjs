// bench_webhook_load (bench/webhook_load.c), the webhook benchmark's load generator, against a tiny
// scripted server: each request's body says how to answer it (Content-Length, chunked in pieces,
// HTTP/1.0 until close, Connection: close, 4xx/5xx, a reset, no answer, a coding it cannot read),
// and the client's counts must match what the server did.  The server also checks that every line
// of the file arrives once and that no connection ever has two requests outstanding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const BIN = path.join(process.env.SWITCHBOARD_BUILD_DIR ?? 'build', 'bench_webhook_load');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'webhook-load-'));

// Writes s in pieces of `step` bytes, one per event-loop turn, so answers arrive split anywhere;
// resolves as the last piece is written (the client may send its next request at once).
async function dribble(sock, s, step) {
  for (let i = 0; i < s.length && !sock.destroyed; i += step) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    sock.write(s.slice(i, i + step));
  }
}

const answers = {
  cl: (s) => s.write('HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 11\r\n\r\n<Response/>'),
  split: (s) => dribble(s, 'HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello', 1),
  chunked: (s) =>
    dribble(s, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n', 3),
  http10: (s) => { s.end('HTTP/1.0 200 OK\r\n\r\nbody until the close'); },
  close: (s) => { s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'); },
  continue: (s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'),
  notfound: (s) => s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'),
  error: (s) => s.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy'),
  reset: (s) => s.resetAndDestroy(),
  gzip: (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'),
  hang: () => new Promise(() => {}),
  slow: (s) => new Promise((r) => setTimeout(() => { answers.cl(s); r(); }, 30)),
};

// A raw HTTP/1.1 server: parses each request's head and body, records it, answers per its body.
async function scriptedServer() {
  const seen = [];
  const problems = [];
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let outstanding = false;
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.subarray(end + 4, end + 4 + len).toString();
        buf = buf.subarray(end + 4 + len);
        if (outstanding) problems.push('a second request before the answer');
        if (!head.startsWith('POST /webhooks/twilio/messaging HTTP/1.1\r\n')) problems.push(`request line: ${head}`);
        if (!/\r\nX-Twilio-Signature: sig\d+\r\n/.test(head + '\r\n')) problems.push(`no signature: ${head}`);
        const mode = /mode=(\w+)/.exec(body)[1];
        seen.push(/id=(\d+)/.exec(body)[1]);
        outstanding = true;
        // The answer is written once the request is whole; the next may only follow the answer.
        const p = answers[mode](sock);
        Promise.resolve(p).then(() => { outstanding = false; });
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, problems, close: () => server.close() };
}

function writeFile(name, modes) {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, modes.map((m, i) => `sig${i}\tid=${i}&mode=${m}&Body=hello+there\n`).join(''));
  return f;
}

async function run(args) {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 0, `exit code (stderr: ${err})`);
  const line = out.trim();
  assert.match(line, /^load /);
  const kv = Object.fromEntries(line.slice(5).split(' ').map((p) => p.split('=')).map(([k, v]) => [k, Number(v)]));
  return { kv, err };
}

test('the binary is built', () => {
  assert.ok(fs.existsSync(BIN), `${BIN} exists`);
  const usage = spawnSync(BIN, [], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage/);
});

test('every kind of answer is read, and every failure counted', async () => {
  const srv = await scriptedServer();
  const kinds = ['cl', 'split', 'chunked', 'http10', 'close', 'continue', 'notfound', 'error', 'reset', 'gzip'];
  const modes = [];
  for (let i = 0; i < 30; i++) modes.push(...kinds);
  const file = writeFile('mixed.txt', modes);
  const { kv, err } = await run(['-c', '4', '-t', '2', '-d', '30', file, srv.url]);
  srv.close();
  const n = (m) => modes.filter((x) => x === m).length;
  assert.deepEqual(srv.problems, []);
  assert.equal(srv.seen.length, modes.length, 'every line sent');
  assert.equal(new Set(srv.seen).size, modes.length, 'no line sent twice');
  assert.equal(kv.file_done, 1);
  assert.equal(kv.requests, modes.length - n('reset') - n('gzip'), 'complete answers');
  assert.equal(kv.errors_status, n('notfound') + n('error'), 'answers other than 2xx');
  assert.equal(kv.errors_read, n('reset'), 'resets');
  assert.equal(kv.errors_parse, n('gzip'), 'unsupported codings');
  assert.equal(kv.errors_timeout, 0);
  assert.equal(kv.errors_connect, 0);
  assert.match(err, /unsupported transfer-encoding/);
  assert.ok(kv.cpu_us_per_request > 0 && kv.max_ms >= kv.p99_ms && kv.p99_ms >= kv.p50_ms);
});

test('latency percentiles come from the answers', async () => {
  const srv = await scriptedServer();
  const modes = Array(40).fill('slow');
  const { kv } = await run(['-c', '2', '-d', '30', writeFile('slow.txt', modes), srv.url]);
  srv.close();
  assert.equal(kv.requests, 40);
  assert.ok(kv.p50_ms >= 29 && kv.p50_ms < 60, `p50 ${kv.p50_ms} ms for 30 ms answers`);
  assert.ok(kv.max_ms >= kv.p50_ms);
  // Closed loop: two connections, 20 answers each of at least 30 ms.
  assert.ok(kv.duration_s >= 0.6, `duration ${kv.duration_s}`);
});

test('a request without an answer times out after the grace period', async () => {
  const srv = await scriptedServer();
  const modes = ['hang', ...Array(1000).fill('cl')];
  const { kv } = await run(['-c', '2', '-d', '0.5', '-g', '0.5', writeFile('hang.txt', modes), srv.url]);
  srv.close();
  assert.equal(kv.errors_timeout, 1);
  assert.ok(kv.requests > 0);
  assert.ok(kv.duration_s >= 1 && kv.duration_s < 5, `duration ${kv.duration_s}`);
});

test('a server that is not there: connection errors, not a crash', async () => {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  const { kv, err } = await run(['-c', '2', '-d', '0.3', writeFile('none.txt', ['cl']), `http://127.0.0.1:${port}`]);
  assert.equal(kv.requests, 0);
  assert.ok(kv.errors_connect >= 2, `connect errors ${kv.errors_connect}`);
  assert.match(err, /connect error/);
});

// SSE over HTTP/2 (node's http2 client, cleartext with prior knowledge) and slow clients:
// 200 streams on one connection (h2o 2.2 allows 100 at a time: a reset frees its slot and its
// resources at once, and the next streams reuse them), and clients that stop reading (a paused
// HTTP/2 stream, a paused HTTP/1.1 connection) are dropped after the send timeout without holding
// back the clients that read, including a sibling stream on the same HTTP/2 connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import http from 'node:http';
import {
  createDb,
  dropDb,
  newId,
  startServer,
  append,
  streamPath,
  openEventSource,
  waitFor,
  finishedStreams,
} from './sse_support.mjs';

const DB_NAME = 'e2e_sse_h2';
let db;
let srv;

before(async () => {
  db = createDb(DB_NAME);
  srv = await startServer({
    db,
    tokens: { root: ['*'] },
    env: { SWITCHBOARD_SSE_SEND_TIMEOUT_MS: '1500', SWITCHBOARD_SSE_HEARTBEAT_MS: '500' },
  });
});

after(async () => {
  const code = srv ? await srv.stop() : 0;
  dropDb(DB_NAME);
  assert.equal(code, 0, `server exit status\n${srv ? srv.log().slice(-4000) : ''}`);
});

// Opens an SSE stream on session; collects the ids it receives.
function h2stream(session, path) {
  const s = session.request({ ':path': path, authorization: 'Bearer root' });
  const st = { s, ids: [], status: 0, text: '', headers: null };
  s.setEncoding('utf8');
  s.on('response', (h) => {
    st.status = h[':status'];
    st.headers = h;
  });
  s.on('data', (d) => {
    st.text += d;
    let i;
    while ((i = st.text.indexOf('\n\n')) >= 0) {
      const msg = st.text.slice(0, i);
      st.text = st.text.slice(i + 2);
      const m = msg.match(/^id: (\d+)$/m);
      if (m) st.ids.push(Number(m[1]));
      else if (msg.startsWith('retry:')) st.started = true;
    }
  });
  s.on('error', () => {});
  return st;
}

test('200 streams on one HTTP/2 connection: 100 at a time, resets free them at once', async () => {
  const ws = newId();
  const session = http2.connect(srv.url);
  await new Promise((r) => session.once('remoteSettings', r));
  // h2o 2.2 advertises (and enforces) 100 concurrent streams per connection.
  assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
  const sockets = new Set();
  try {
    for (let round = 0; round < 2; round++) {
      const streams = [];
      for (let i = 0; i < 100; i++) streams.push(h2stream(session, streamPath(ws)));
      await waitFor(() => streams.every((st) => st.started), 20000, 'every stream to start');
      assert.ok(streams.every((st) => st.status === 200));
      const written = await append(db, ws, { count: 20, 'new-streams': 4, 'in-flight': 4 });
      const want = written.map((e) => e.position);
      await waitFor(() => streams.every((st) => st.ids.length >= want.length), 20000, 'every stream to get them');
      for (const st of streams) assert.deepEqual(st.ids, want);
      sockets.add(session.socket);
      // Reset them all: the server lets each go at once (its access log line is written when
      // h2o disposes of the request, after our stop callback freed the client).
      const done0 = finishedStreams(srv.log(), ws);
      for (const st of streams) st.s.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => finishedStreams(srv.log(), ws) >= done0 + 100, 5000, 'the server to let 100 streams go');
    }
    assert.equal(sockets.size, 1, 'one connection throughout');
    assert.ok(!session.destroyed);
  } finally {
    session.close();
  }
});

test('clients that stop reading are dropped; the others get everything', async () => {
  const ws = newId();
  // HTTP/2: one stream that never reads and a healthy sibling on the same connection.  Like a
  // browser, the client gives the connection a window far larger than a stream's (node's default
  // is 64 KiB for both), so the stalled stream's unread 64 KiB cannot starve the connection: what
  // is tested is the server, not the client's flow-control policy.
  const session = http2.connect(srv.url);
  await new Promise((r) => session.once('connect', r));
  session.setLocalWindowSize(16 * 1024 * 1024);
  const stalled2 = h2stream(session, streamPath(ws));
  stalled2.s.pause();
  const sibling = h2stream(session, streamPath(ws));
  // HTTP/1.1: a connection that never reads, and an EventSource that does.
  const stalled1 = await new Promise((resolve, reject) => {
    const req = http.get(`${srv.url}${streamPath(ws)}`, { headers: { authorization: 'Bearer root' } }, (res) => {
      res.pause();
      res.socket.pause();
      resolve({ req, res });
    });
    req.on('error', reject);
  });
  const reader = openEventSource(`${srv.url}${streamPath(ws)}`, { token: 'root' });
  await new Promise((r) => reader.es.addEventListener('open', r, { once: true }));
  await waitFor(() => sibling.started, 5000, 'the sibling stream');
  try {
    // About 16 MB of events: more than the kernel buffers and HTTP/2 windows can absorb.
    const t0 = Date.now();
    const written = await append(db, ws, { count: 2000, 'payload-bytes': 8000, 'new-streams': 8, 'in-flight': 16 });
    const wrote = Date.now() - t0;
    const want = written.map((e) => e.position);
    await reader.until(() => reader.events.length >= want.length, 60000, 'the reader');
    await waitFor(() => sibling.ids.length >= want.length, 60000, 'the sibling stream');
    const lag = Date.now() - t0 - wrote;
    assert.deepEqual(
      reader.events.map((e) => Number(e.id)),
      want,
    );
    assert.deepEqual(sibling.ids, want);
    // Both stalled clients are disconnected by the send timeout (1.5 s).
    await waitFor(
      () => (srv.log().match(/dropping a client that stopped reading/g) || []).length >= 2,
      20000,
      'both stalled clients to be dropped',
    );
    const drops = srv.log().match(/dropping a client that stopped reading .*HTTP\/(\S+)\)/g);
    assert.deepEqual(drops.map((l) => l.match(/HTTP\/(\S+)\)/)[1]).sort(), ['1.1', '2']);
    assert.ok(stalled2.ids.length < want.length, `the paused stream got ${stalled2.ids.length} events`);
    // The sibling stream outlived the reset of the stalled one, on the same connection.
    const more = await append(db, ws, { count: 5 });
    await waitFor(() => sibling.ids.length >= want.length + 5, 10000, 'the sibling after the reset');
    assert.deepEqual(sibling.ids.slice(-5), more.map((e) => e.position));
    console.log(`# wrote ${want.length} events in ${wrote} ms; readers done ${lag} ms later`);
  } finally {
    reader.close();
    stalled1.req.destroy();
    session.close();
  }
});

// SSE through a real EventSource client (the npm `eventsource` package) and raw HTTP/1.1:
// message format and order, catch-up then live, resume by Last-Event-ID across forced reconnects
// while events keep being appended (nothing lost, nothing repeated), filters, auth, heartbeats and
// the single `retry:`, and a client leaving being noticed at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  createDb,
  dropDb,
  newId,
  startServer,
  append,
  streamPath,
  openEventSource,
  rawGet,
  waitFor,
  finishedStreams,
} from './sse_support.mjs';

const DB_NAME = 'e2e_sse';
const WS = newId();
const OTHER_WS = newId();
let db;
let srv;

before(async () => {
  db = createDb(DB_NAME);
  srv = await startServer({
    db,
    tokens: { alice: [WS], root: ['*'] },
    // A small window (64 KiB per loop) so slow clients fall out of it and catch up from the log.
    env: { SWITCHBOARD_SSE_HEARTBEAT_MS: '200', SWITCHBOARD_SSE_RETRY_MS: '50', SWITCHBOARD_SSE_WINDOW_BYTES: '65536' },
  });
});

after(async () => {
  const code = srv ? await srv.stop() : 0;
  dropDb(DB_NAME);
  // Exit 0 under ASan means no leak either.
  assert.equal(code, 0, `server exit status\n${srv ? srv.log().slice(-4000) : ''}`);
});

test('catch-up then live: every event once, in order, in the documented shape', async () => {
  const early = await append(db, WS, { count: 30, 'new-streams': 3 });
  await append(db, OTHER_WS, { count: 5 }); // another workspace's events never show
  const c = openEventSource(`${srv.url}${streamPath(WS)}?after=0`, { token: 'alice' });
  try {
    await c.until(() => c.events.length >= 30, 20000, 'the catch-up');
    const late = await append(db, WS, { count: 30, 'new-streams': 2, 'in-flight': 4 });
    await c.until(() => c.events.length >= 60, 20000, 'the live events');
    const want = [...early, ...late].map((e) => e.position);
    assert.deepEqual(
      c.events.map((e) => Number(e.id)),
      want,
    );
    for (const [i, e] of c.events.entries()) {
      const d = e.data;
      const src = [...early, ...late][i];
      assert.deepEqual(Object.keys(d), [
        'position',
        'stream',
        'type',
        'version',
        'workspace',
        'recorded_at',
        'data',
        'metadata',
      ]);
      assert.equal(d.position, src.position);
      assert.equal(d.stream, src.stream);
      assert.equal(d.type, 'ContactUpdated');
      assert.equal(e.type, 'ContactUpdated');
      assert.equal(d.workspace, WS);
      assert.match(d.recorded_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.equal(typeof d.data.seq, 'number');
      assert.equal(d.metadata.source, 'sbtest_append');
      assert.ok(d.version >= 1);
    }
    // Within a stream, versions count up by one.
    const last = new Map();
    for (const e of c.events) {
      const v = last.get(e.data.stream) ?? 0;
      assert.equal(e.data.version, v + 1);
      last.set(e.data.stream, e.data.version);
    }
  } finally {
    c.close();
  }
});

test('a new client without a resume position starts at the live head', async () => {
  const c = openEventSource(`${srv.url}${streamPath(WS)}`, { token: 'alice' });
  try {
    await new Promise((r) => c.es.addEventListener('open', r, { once: true }));
    const live = await append(db, WS, { count: 5 });
    await c.until(() => c.events.length >= 5, 20000, 'live events');
    assert.deepEqual(
      c.events.map((e) => Number(e.id)),
      live.map((e) => e.position),
    );
  } finally {
    c.close();
  }
});

// A TCP proxy whose client connections the test can cut, so the EventSource sees its connection
// drop and reconnects by itself, sending Last-Event-ID.
function cuttingProxy(port) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const pair = { client, upstream };
    sockets.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        cut() {
          for (const p of sockets) {
            p.client.destroy();
            p.upstream.destroy();
          }
          sockets.clear();
        },
        close: () => new Promise((r) => server.close(r)),
      }),
    ),
  );
}

test('reconnects resume with Last-Event-ID while events keep coming: no gap, no duplicate', async () => {
  const ws = newId();
  await append(db, ws, { count: 1 }); // the client resumes from here
  const proxy = await cuttingProxy(srv.port);
  const c = openEventSource(`http://127.0.0.1:${proxy.port}${streamPath(ws)}?after=0`, { token: 'root' });
  let opens = 0;
  c.es.addEventListener('open', () => opens++);
  try {
    await c.until(() => c.events.length >= 1, 20000, 'the first event');
    const writer = append(db, ws, { count: 2000, 'new-streams': 8, 'in-flight': 8, rate: 1000 });
    // Cut the connection whenever a few more events arrived, until the writer is done.
    let done = false;
    const finished = writer.then((r) => {
      done = true;
      return r;
    });
    let cuts = 0;
    while (!done) {
      const have = c.events.length;
      const progress = c.until(() => c.events.length >= have + 50, 30000, 'progress between cuts');
      progress.catch(() => {});
      await Promise.race([progress, finished]);
      if (!done) {
        proxy.cut();
        cuts++;
      }
    }
    const written = await writer;
    const total = written.length + 1;
    await c.until(() => c.events.length >= total, 30000, 'every event after the last reconnect');
    const ids = c.events.map((e) => Number(e.id));
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], 'positions increase');
    assert.deepEqual(ids.slice(1), written.map((e) => e.position));
    assert.ok(cuts >= 3, `cut the connection ${cuts} times`);
    assert.ok(opens >= cuts, `reconnected ${opens} times`);
  } finally {
    c.close();
    await proxy.close();
  }
});

test('a slow reader falls behind the live window and catches up from the log, in order', async () => {
  const ws = newId();
  const r = await rawGet(`${srv.url}${streamPath(ws)}`, { Authorization: 'Bearer root' });
  const fast = openEventSource(`${srv.url}${streamPath(ws)}`, { token: 'root' });
  await new Promise((res) => fast.es.addEventListener('open', res, { once: true }));
  await waitFor(() => r.text().startsWith('retry:'), 5000, 'the slow stream to start');
  // Read in fits: pause for 300 ms after every ~100 KB, while ~1.5 MB of events are written.
  let paused = false;
  r.res.on('data', () => {
    if (!paused && r.text().length % 100000 < 2000) {
      paused = true;
      r.res.pause();
      setTimeout(() => {
        paused = false;
        r.res.resume();
      }, 300);
    }
  });
  try {
    const written = await append(db, ws, { count: 1500, 'payload-bytes': 700, 'new-streams': 4, 'in-flight': 8 });
    const want = written.map((e) => e.position);
    const ids = () => [...r.text().matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    await waitFor(() => ids().length >= want.length, 60000, 'the slow reader');
    await fast.until(() => fast.events.length >= want.length, 20000, 'the fast reader');
    assert.deepEqual(ids(), want);
    assert.deepEqual(
      fast.events.map((e) => Number(e.id)),
      want,
    );
  } finally {
    r.req.destroy();
    fast.close();
  }
});

test('filters: types, streams and categories, in catch-up and live alike', async () => {
  const ws = newId();
  const spec = { count: 60, 'new-streams': 6, categories: 'contact,call', types: 'ContactUpdated,ContactTagged,CallRinging' };
  const first = await append(db, ws, spec);
  const callStream = first.find((e) => e.stream.startsWith('call-')).stream;
  const contactStream = first.find((e) => e.stream.startsWith('contact-')).stream;
  const cases = [
    { q: 'types=ContactTagged,CallRinging', pick: (e) => ['ContactTagged', 'CallRinging'].includes(e.type) },
    { q: `streams=${callStream},${contactStream}`, pick: (e) => [callStream, contactStream].includes(e.stream) },
    { q: 'categories=call', pick: (e) => e.stream.startsWith('call-') },
    { q: 'categories=contact&types=ContactTagged', pick: (e) => e.stream.startsWith('contact-') && e.type === 'ContactTagged' },
  ];
  const types = ['ContactUpdated', 'ContactTagged', 'CallRinging'];
  const clients = cases.map((k) =>
    openEventSource(`${srv.url}${streamPath(ws)}?after=0&${k.q}`, { token: 'root', types }),
  );
  try {
    await Promise.all(
      clients.map((c, i) => c.until(() => c.events.length >= first.filter(cases[i].pick).length, 20000, cases[i].q)),
    );
    const second = await append(db, ws, { ...spec, streams: first.slice(0, 6).map((e) => e.stream).join(',') });
    const all = [...first, ...second];
    for (const [i, c] of clients.entries()) {
      const want = all.filter(cases[i].pick).map((e) => e.position);
      await c.until(() => c.events.length >= want.length, 20000, cases[i].q);
      // A little longer, to catch anything extra.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        c.events.map((e) => Number(e.id)),
        want,
        cases[i].q,
      );
    }
  } finally {
    for (const c of clients) c.close();
  }
});

test('only members may subscribe; bad parameters are 400', async () => {
  const cases = [
    [`${streamPath(WS)}`, {}, 401],
    [`${streamPath(WS)}?access_token=nobody`, {}, 401],
    [`${streamPath(WS)}`, { Authorization: 'Bearer nobody' }, 401],
    [`${streamPath(OTHER_WS)}?access_token=alice`, {}, 403],
    [`${streamPath(WS)}?access_token=alice&after=-1`, {}, 400],
    [`${streamPath(WS)}?access_token=alice&types=Bad%0AType`, {}, 400],
    [`${streamPath(WS)}?access_token=alice&streams=contact-nope`, {}, 400],
    [`${streamPath(WS)}?access_token=alice`, { 'Last-Event-ID': 'abc' }, 400],
    ['/v1/workspaces/not-a-uuid/events/stream?access_token=root', {}, 400],
  ];
  for (const [p, headers, status] of cases) {
    const r = await fetch(`${srv.url}${p}`, { headers });
    assert.equal(r.status, status, `${p} ${JSON.stringify(headers)}`);
    const body = await r.json();
    assert.ok(body.error && body.error.code, 'JSON error body');
    if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer');
  }
  // The token in the query works for a member (browsers' EventSource cannot set headers).
  const ok = await rawGet(`${srv.url}${streamPath(WS)}?access_token=alice`);
  assert.equal(ok.res.statusCode, 200);
  assert.equal(ok.res.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.match(ok.res.headers['cache-control'], /no-cache/);
  ok.req.destroy();
});

test('heartbeat comments keep an idle stream alive; retry: is sent once', async () => {
  const ws = newId();
  const r = await rawGet(`${srv.url}${streamPath(ws)}`, { Authorization: 'Bearer root' });
  try {
    await waitFor(() => (r.text().match(/^:/gm) || []).length >= 5, 5000, 'five heartbeats');
    const text = r.text();
    assert.ok(text.startsWith('retry: 50\n\n'), JSON.stringify(text.slice(0, 40)));
    assert.equal((text.match(/^retry:/gm) || []).length, 1);
    assert.equal((text.match(/^id:/gm) || []).length, 0);
    // A heartbeat every 200 ms (checked every 50 ms): 5 of them take at least ~0.8 s.
    const t0 = Date.now();
    const n0 = (r.text().match(/^:/gm) || []).length;
    await new Promise((res) => setTimeout(res, 1000));
    const n = (r.text().match(/^:/gm) || []).length - n0;
    assert.ok(n >= 3 && n <= 6, `${n} heartbeats in ${Date.now() - t0} ms`);
  } finally {
    r.req.destroy();
  }
});

test('a client that closes its HTTP/1.1 connection is let go at once', async () => {
  const ws = newId();
  const r = await rawGet(`${srv.url}${streamPath(ws)}`, { Authorization: 'Bearer root' });
  await waitFor(() => r.text().startsWith('retry:'), 5000, 'the stream to start');
  const before = finishedStreams(srv.log(), ws);
  r.req.destroy();
  // Well under the 200 ms heartbeat: the server noticed the close, not a failed write.
  const t0 = Date.now();
  await waitFor(() => finishedStreams(srv.log(), ws) > before, 5000, 'the server to end the request');
  assert.ok(Date.now() - t0 < 150, `took ${Date.now() - t0} ms`);
});

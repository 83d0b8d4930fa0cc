// Compressed answers (docs/api/README.md, "Compression"): a contact's cached first page of notes is
// sent in gzip to clients that accept it, over HTTP/1.1 and HTTP/2, and decodes to exactly the body
// an identity client gets; every answer of the route carries Vary: Accept-Encoding; clients that
// do not accept gzip (no header, q=0, identity only) and small pages get the plain body; and a new
// note reaches gzip readers as it reaches the others (the compressed copy goes with the page).
// One loop, so every request meets the same thread cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { eventually, serverFixture, workspace } from './api_support.mjs';

const fx = serverFixture('e2e_api_gzip', { threads: 1 });

// One request with curl (extra arguments first): {status, headers (lowercase names), body (Buffer,
// as received)}.  -i puts the header block before the body; curl prints one block per response.
function curl(args, url, token) {
  const out = execFileSync('curl', ['-s', '-i', ...args, '-H', `authorization: Bearer ${token}`, url], { maxBuffer: 1 << 24 });
  const end = out.indexOf('\r\n\r\n');
  const lines = out.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0].split(' ')[1]), headers, body: out.subarray(end + 4) };
}

// One HTTP/2 request with node's client, which leaves the body as it came.
function h2get(url, path, headers) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const req = session.request({ ':path': path, ...headers });
    const chunks = [];
    let head;
    req.on('response', (h) => {
      head = h;
    });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      session.close();
      resolve({ status: head[':status'], headers: head, body: Buffer.concat(chunks) });
    });
    req.on('error', reject);
    req.end();
  });
}

const varies = (h) => /(^|,)\s*accept-encoding\s*(,|$)/i.test(h.vary ?? '');

// A contact with n notes of about 100 characters (20: a 3 kB page), read until the thread cache
// serves it (the first read fills the cache from the read model).
async function thread(n = 20, body = (i) => `note ${i}: called back about the quote, the customer wants delivery on Tuesday`) {
  const { ws, owner } = await workspace(fx.srv.url);
  const c = (await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Thread' })).json;
  const path = `/v1/workspaces/${ws.id}/contacts/${c.id}/notes`;
  for (let i = 1; i <= n; i++) assert.equal((await owner.client.post(path, { body: body(i) })).status, 201);
  await eventually(async () => (await owner.client.get(`${path}?limit=50`)).json?.items?.length === n, { what: 'the notes listed' });
  return { path: `${path}?limit=50`, url: `${fx.srv.url}${path}?limit=50`, token: owner.token, owner, ws };
}

test('HTTP/1.1: gzip when accepted, decoding to exactly the identity body; Vary on both', async () => {
  const t = await thread();
  const plain = curl(['-H', 'accept-encoding: identity'], t.url, t.token);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(varies(plain.headers), JSON.stringify(plain.headers));
  assert.equal(JSON.parse(plain.body).items.length, 20);
  assert.ok(plain.body.length > 2000);
  for (const ae of ['gzip, deflate, br', 'gzip', 'br;q=1, gzip;q=0.5', '*']) {
    const gz = curl(['-H', `accept-encoding: ${ae}`], t.url, t.token);
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip', ae);
    assert.ok(varies(gz.headers));
    assert.equal(Number(gz.headers['content-length']), gz.body.length);
    assert.ok(gz.body.length < plain.body.length / 3, `${gz.body.length} bytes`);
    assert.deepEqual(zlib.gunzipSync(gz.body), plain.body, ae);
    // RFC 9110 §8.8.3: an ETag, were one sent, would have to differ between the codings.
    if (gz.headers.etag !== undefined || plain.headers.etag !== undefined) assert.notEqual(gz.headers.etag, plain.headers.etag);
  }
  // What browsers do, through curl's own decoder.
  const dec = curl(['--compressed'], t.url, t.token);
  assert.equal(dec.headers['content-encoding'], 'gzip');
  assert.deepEqual(dec.body, plain.body);
});

test('HTTP/2: gzip when accepted (curl --http2-prior-knowledge, node http2), identity otherwise', async () => {
  const t = await thread();
  const plain = curl(['--http2-prior-knowledge'], t.url, t.token);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(varies(plain.headers));
  const gz = curl(['--http2-prior-knowledge', '-H', 'accept-encoding: gzip, deflate, br'], t.url, t.token);
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.ok(varies(gz.headers));
  assert.deepEqual(zlib.gunzipSync(gz.body), plain.body);
  const dec = curl(['--http2-prior-knowledge', '--compressed'], t.url, t.token);
  assert.equal(dec.headers['content-encoding'], 'gzip');
  assert.deepEqual(dec.body, plain.body);
  const auth = { authorization: `Bearer ${t.token}` };
  const n = await h2get(fx.srv.url, t.path, { ...auth, 'accept-encoding': 'gzip' });
  assert.equal(n.status, 200);
  assert.equal(n.headers['content-encoding'], 'gzip');
  assert.deepEqual(zlib.gunzipSync(n.body), plain.body);
  const ni = await h2get(fx.srv.url, t.path, auth);
  assert.equal(ni.headers['content-encoding'], undefined);
  assert.deepEqual(ni.body, plain.body);
});

test('identity for clients that do not take gzip: no header, q=0, other codings, identity only', async () => {
  const t = await thread();
  const want = curl([], t.url, t.token).body;
  assert.equal(JSON.parse(want).items.length, 20);
  for (const ae of ['gzip;q=0', 'gzip;q=0.000, deflate', '*;q=0', 'br, deflate', 'identity', 'gzip;q=0, *']) {
    for (const proto of [[], ['--http2-prior-knowledge']]) {
      const r = curl([...proto, '-H', `accept-encoding: ${ae}`], t.url, t.token);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], undefined, `${ae} ${proto}`);
      assert.ok(varies(r.headers));
      assert.deepEqual(r.body, want, ae);
    }
  }
  // A page under 1 kB is not worth compressing.
  const small = await thread(2, (i) => `hi ${i}`);
  const r = curl(['-H', 'accept-encoding: gzip'], small.url, small.token);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-encoding'], undefined);
  assert.ok(varies(r.headers));
  assert.equal(JSON.parse(r.body).items.length, 2);
  // Answers built for one request are never compressed (docs/api/README.md), nor pages after a
  // cursor: a list of 40 contacts (about 8 kB), and the thread's second page.
  for (let i = 0; i < 40; i++) await t.owner.client.post(`/v1/workspaces/${t.ws.id}/contacts`, { name: `Contact with a longer name ${i}` });
  const list = curl(['-H', 'accept-encoding: gzip'], `${fx.srv.url}/v1/workspaces/${t.ws.id}/contacts?limit=200`, t.token);
  assert.equal(list.status, 200);
  assert.ok(list.body.length > 4000, `${list.body.length} bytes`);
  assert.equal(list.headers['content-encoding'], undefined);
  const cursor = JSON.parse(curl([], t.url.replace('limit=50', 'limit=5'), t.token).body).next_cursor;
  const next = curl(['-H', 'accept-encoding: gzip'], `${t.url.replace('limit=50', 'limit=5')}&cursor=${cursor}`, t.token);
  assert.equal(next.status, 200);
  assert.equal(JSON.parse(next.body).items.length, 5);
  assert.equal(next.headers['content-encoding'], undefined);
});

test('a new note reaches gzip readers: the compressed copy is never older than the page', async () => {
  const t = await thread();
  const gz = () => curl(['-H', 'accept-encoding: gzip'], t.url, t.token);
  const first = gz();
  assert.equal(first.headers['content-encoding'], 'gzip');
  assert.equal(JSON.parse(zlib.gunzipSync(first.body)).items.length, 20);
  const added = (await t.owner.client.post(t.path.replace('?limit=50', ''), { body: 'the latest word on the order' })).json;
  // Once the identity page shows the note (the cache has applied it and rendered a new page), the
  // very next gzip read, from the same cache, must show it too, and decode to the same bytes.
  let plain;
  await eventually(async () => {
    plain = curl(['-H', 'accept-encoding: identity'], t.url, t.token);
    return JSON.parse(plain.body).items.some((n) => n.id === added.id);
  }, { what: 'the note in the identity page' });
  for (const proto of [[], ['--http2-prior-knowledge']]) {
    const after = curl([...proto, '-H', 'accept-encoding: gzip'], t.url, t.token);
    assert.equal(after.headers['content-encoding'], 'gzip');
    assert.deepEqual(zlib.gunzipSync(after.body), plain.body);
  }
  // And an edit, the other way round: gzip first, then identity agrees.
  const nid = JSON.parse(plain.body).items[0].id;
  assert.equal((await t.owner.client.patch(`${t.path.replace('?limit=50', '')}/${nid}`, { body: 'edited on the way' })).status, 200);
  let seen;
  await eventually(async () => {
    seen = gz();
    return JSON.parse(zlib.gunzipSync(seen.body)).items[0].body === 'edited on the way';
  }, { what: 'the edit in the gzip page' });
  assert.deepEqual(zlib.gunzipSync(seen.body), curl([], t.url, t.token).body);
});

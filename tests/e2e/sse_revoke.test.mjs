// SSE streams last only as long as their authorization (SPEC §6: only members may subscribe), end
// to end with the real API: a member removed from the workspace loses their open streams at once;
// a logout ends the streams of the token in the process that handled it at once, and in another
// process at its next periodic check; so does a token that expires while streaming.  Others'
// streams go on, and an EventSource's reconnection is refused.
//
// Two servers share one database: A with the default periodic check (30 s, so anything it ends
// within seconds was ended by the event or the logout itself), B checking every 300 ms.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { EventSource } from 'eventsource';
import { createDb, dropDb, signup, sql, startServer, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_sse_revoke';
let db, a, b;

before(async () => {
  db = createDb(DB_NAME);
  a = await startServer({ db });
  b = await startServer({ db, env: { SWITCHBOARD_SSE_REAUTH_MS: '300' } });
});

after(async () => {
  const codes = [await a?.stop(), await b?.stop()];
  dropDb(DB_NAME);
  assert.deepEqual(codes, [0, 0], 'servers exit cleanly');
});

const streamPath = (ws) => `/v1/workspaces/${ws}/events/stream`;

// A raw HTTP/1.1 stream: resolves once the headers are in, with the text so far and a promise of
// the response's end (the server finishing it), which records when that happened.
function openStream(url, token) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      const s = { res, status: res.statusCode, endedAt: null, text: () => text };
      s.ended = new Promise((done) => {
        res.on('end', () => {
          s.endedAt = Date.now();
          done();
        });
        res.on('error', () => {
          s.endedAt = Date.now();
          done();
        });
      });
      s.close = () => req.destroy();
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      resolve(s);
    });
    req.on('error', reject);
  });
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const contactsSeen = (s) => (s.text().match(/^event: ContactCreated$/gm) || []).length;

// A workspace with its owner and two more members.
async function team() {
  const { ws, owner } = await workspace(a.url);
  const base = `/v1/workspaces/${ws.id}`;
  const members = [];
  for (const tag of ['agent1', 'agent2']) {
    const u = await signup(a.url, { name: tag });
    const r = await owner.client.post(`${base}/members`, { email: u.email, role: 'agent' });
    assert.equal(r.status, 201, r.text);
    members.push(u);
  }
  return { ws, base, owner, members };
}

// Adds a contact and waits until every stream in live has seen it (so each is live).
async function contactSeenBy(owner, base, live, n) {
  const r = await owner.client.post(`${base}/contacts`, { name: `Contact ${n}` });
  assert.equal(r.status, 201, r.text);
  for (const s of live) await until(() => contactsSeen(s) >= n, 10000, `contact ${n} on every stream`);
}

test('a member removed from the workspace loses their streams at once; the others go on', async () => {
  const { ws, base, owner, members } = await team();
  const [agent, other] = members;
  const url = a.url + streamPath(ws.id);
  const gone = await openStream(url, agent.token);
  const stays = await openStream(url, other.token);
  const ownerStream = await openStream(url, owner.token);
  assert.deepEqual([gone.status, stays.status, ownerStream.status], [200, 200, 200]);
  // The same member through a browser-style EventSource (?access_token=), which reconnects.
  const es = new EventSource(`${url}?access_token=${encodeURIComponent(agent.token)}`);
  let esEvents = 0;
  es.addEventListener('ContactCreated', () => esEvents++);
  await contactSeenBy(owner, base, [gone, stays, ownerStream], 1);
  await until(() => esEvents >= 1, 10000, 'the EventSource live');

  const t0 = Date.now();
  const r = await owner.client.del(`${base}/members/${agent.user.id}`);
  assert.equal(r.status, 204, r.text);
  // Well within the periodic check (30 s): the removal itself ended it (usually in milliseconds;
  // the margin is for a loaded machine).
  await Promise.race([gone.ended, new Promise((r) => setTimeout(r, 15000))]);
  assert.ok(gone.endedAt !== null, 'the removed member\'s stream ended');
  assert.ok(gone.endedAt - t0 < 10000, `ended promptly (${gone.endedAt - t0} ms; the periodic check is 30 s)`);
  // The EventSource reconnects and is refused: it gives up (CLOSED) rather than streaming on.
  await until(() => es.readyState === EventSource.CLOSED, 10000, 'the EventSource to be refused');
  const before = contactsSeen(gone);

  // Everyone else still streams.
  await contactSeenBy(owner, base, [stays, ownerStream], 2);
  assert.equal(stays.endedAt, null);
  assert.equal(ownerStream.endedAt, null);
  assert.equal(contactsSeen(gone), before, 'nothing reached the removed member after the end');
  assert.equal(esEvents, 1);
  // And a new stream is refused outright.
  const again = await openStream(url, agent.token);
  assert.equal(again.status, 404);
  again.close();
  for (const s of [stays, ownerStream]) s.close();
  es.close();
});

test('a logout ends the token\'s streams: at once where it happened, at the next check elsewhere', async () => {
  const { ws, base, owner, members } = await team();
  const [agent, other] = members;
  // Two sessions of the same user: one logs out, the other must keep streaming.
  const login = await fetch(`${a.url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: agent.email, password: agent.password }),
  });
  assert.equal(login.status, 200);
  const second = (await login.json()).token;
  const onA = await openStream(a.url + streamPath(ws.id), agent.token);
  const onB = await openStream(b.url + streamPath(ws.id), agent.token);
  const secondOnA = await openStream(a.url + streamPath(ws.id), second);
  const otherOnA = await openStream(a.url + streamPath(ws.id), other.token);
  await contactSeenBy(owner, base, [onA, onB, secondOnA, otherOnA], 1);

  const t0 = Date.now();
  const out = await agent.client.post('/v1/auth/logout', undefined);
  assert.equal(out.status, 204, out.text);
  await Promise.race([onA.ended, new Promise((r) => setTimeout(r, 15000))]);
  assert.ok(
    onA.endedAt !== null && onA.endedAt - t0 < 10000,
    `ended promptly in the process that logged out (${onA.endedAt - t0} ms; the periodic check is 30 s)`,
  );
  // B learns at its next periodic check (300 ms here) once its token cache (2 s) has expired.
  await Promise.race([onB.ended, new Promise((r) => setTimeout(r, 10000))]);
  assert.ok(onB.endedAt !== null, 'ended in the other process too');

  await contactSeenBy(owner, base, [secondOnA, otherOnA], 2);
  assert.equal(secondOnA.endedAt, null, 'the same user\'s other session streams on');
  assert.equal(otherOnA.endedAt, null);
  for (const s of [secondOnA, otherOnA]) s.close();
});

test('a token that expires while streaming ends its stream at the next check', async () => {
  const { ws, base, owner, members } = await team();
  const [agent, other] = members;
  const s = await openStream(b.url + streamPath(ws.id), agent.token);
  const o = await openStream(b.url + streamPath(ws.id), other.token);
  await contactSeenBy(owner, base, [s, o], 1);
  sql(db, `UPDATE auth_sessions SET expires_at = now() WHERE token_hash = sha256('${agent.token}'::bytea)`);
  await Promise.race([s.ended, new Promise((r) => setTimeout(r, 10000))]);
  assert.ok(s.endedAt !== null, 'the expired token\'s stream ended');
  await contactSeenBy(owner, base, [o], 2);
  assert.equal(o.endedAt, null);
  o.close();
});

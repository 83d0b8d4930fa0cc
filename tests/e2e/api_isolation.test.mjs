// Isolation between workspaces on every workspace route: a member of workspace A who uses B's ids
// (B's workspace, or B's contact, note or member under A's workspace) gets 404 and learns nothing;
// nothing is stored, and B's data is unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventCount, serverFixture, signup, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_api_isolation';
let A, B;

async function setUp(url) {
  const w = await workspace(url);
  const c = w.owner.client;
  const base = `/v1/workspaces/${w.ws.id}`;
  await c.post(`${base}/pipeline/stages`, { name: 'Lead' });
  await c.put(`${base}/auto-replies/hours`, { reply: '9 to 5' });
  const contact = (await c.post(`${base}/contacts`, { name: 'Zed', phone: '+14155550199' })).json;
  const note = (await c.post(`${base}/contacts/${contact.id}/notes`, { body: 'hello' })).json;
  const agent = await signup(url);
  await c.post(`${base}/members`, { email: agent.email, role: 'agent' });
  return { ...w, base, contact, note, agent };
}

const fx = serverFixture(DB_NAME, {
  setup: async ({ srv }) => {
    A = await setUp(srv.url);
    B = await setUp(srv.url);
  },
});

// Every workspace route, with {ws}, {id}, {nid}, {uid} filled from the workspace given.
const routes = (w, a) => {
  const ws = w.ws.id;
  const id = w.contact.id;
  const nid = w.note.id;
  const uid = w.agent.user.id;
  return [
    ['GET', `/v1/workspaces/${ws}`],
    ['PATCH', `/v1/workspaces/${ws}`, { name: 'pwned' }],
    ['GET', `/v1/workspaces/${ws}/members`],
    ['POST', `/v1/workspaces/${ws}/members`, { email: a.owner.email, role: 'owner' }],
    ['PATCH', `/v1/workspaces/${ws}/members/${uid}`, { role: 'owner' }],
    ['DELETE', `/v1/workspaces/${ws}/members/${uid}`],
    ['GET', `/v1/workspaces/${ws}/pipeline/stages`],
    ['POST', `/v1/workspaces/${ws}/pipeline/stages`, { name: 'Pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/pipeline/stages/Lead`],
    ['GET', `/v1/workspaces/${ws}/auto-replies`],
    ['GET', `/v1/workspaces/${ws}/auto-replies/hours`],
    ['PUT', `/v1/workspaces/${ws}/auto-replies/hours`, { reply: 'pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/auto-replies/hours`],
    ['POST', `/v1/workspaces/${ws}/contacts`, { name: 'Pwned' }],
    ['GET', `/v1/workspaces/${ws}/contacts/${id}`],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${id}`, { name: 'pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/contacts/${id}`],
    ['POST', `/v1/workspaces/${ws}/contacts/${id}/notes`, { body: 'pwned' }],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${id}/notes/${nid}`, { body: 'pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/contacts/${id}/notes/${nid}`],
    ['GET', `/v1/workspaces/${ws}/events`],
  ];
};

// B's resources under A's own workspace path: the ids of another workspace's contact, note and
// member.
const crossed = (a, b) => {
  const ws = a.ws.id;
  return [
    ['GET', `/v1/workspaces/${ws}/contacts/${b.contact.id}`],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${b.contact.id}`, { name: 'pwned' }],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${b.contact.id}`, { phone: '+14155550111' }],
    ['DELETE', `/v1/workspaces/${ws}/contacts/${b.contact.id}`],
    ['POST', `/v1/workspaces/${ws}/contacts/${b.contact.id}/notes`, { body: 'pwned' }],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${b.contact.id}/notes/${b.note.id}`, { body: 'pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/contacts/${b.contact.id}/notes/${b.note.id}`],
    ['PATCH', `/v1/workspaces/${ws}/contacts/${a.contact.id}/notes/${b.note.id}`, { body: 'pwned' }],
    ['DELETE', `/v1/workspaces/${ws}/contacts/${a.contact.id}/notes/${b.note.id}`],
    ['PATCH', `/v1/workspaces/${ws}/members/${b.agent.user.id}`, { role: 'admin' }],
    ['DELETE', `/v1/workspaces/${ws}/members/${b.owner.user.id}`],
  ];
};

test('every workspace route answers 404 to a member of another workspace, and stores nothing', async () => {
  const before = eventCount(fx.db);
  const snapshot = await B.owner.client.get(`${B.base}/contacts/${B.contact.id}`);
  for (const user of [A.owner, A.agent]) {
    for (const [method, path, body] of routes(B, A)) {
      const r = await user.client.req(method, path, { body });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.ok(['workspace_not_found'].includes(r.json.error.code), `${method} ${path}: ${r.text}`);
    }
  }
  assert.equal(eventCount(fx.db), before);
  const still = await B.owner.client.get(`${B.base}/contacts/${B.contact.id}`);
  assert.equal(still.text, snapshot.text);
  assert.equal(still.headers.get('etag'), snapshot.headers.get('etag'));
});

test('another workspace\'s contact, note and member ids under one\'s own workspace answer 404', async () => {
  const before = eventCount(fx.db);
  for (const [method, path, body] of crossed(A, B)) {
    const r = await A.owner.client.req(method, path, { body });
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
  }
  assert.equal(eventCount(fx.db), before);
  // B's number is still B's contact's: A's attempt to take it as a new phone claimed nothing.
  const again = await A.owner.client.post(`${A.base}/contacts`, { name: 'Also Zed', phone: '+14155550111' });
  assert.equal(again.status, 201);
});

test('a stranger, with a valid token but no workspace, gets 404 everywhere; no token gets 401', async () => {
  const stranger = await signup(fx.srv.url);
  for (const [method, path, body] of routes(A, A)) {
    const r = await stranger.client.req(method, path, { body });
    assert.equal(r.status, 404, `${method} ${path}`);
    const anon = await stranger.client.as(null).req(method, path, { body });
    assert.equal(anon.status, 401, `${method} ${path}`);
  }
});

test('ids that are not uuids are simply unknown', async () => {
  for (const path of [
    '/v1/workspaces/not-a-uuid',
    `/v1/workspaces/${A.ws.id.toUpperCase()}x`,
    `/v1/workspaces/${A.ws.id}/contacts/not-a-uuid`,
    `/v1/workspaces/${A.ws.id}/contacts/${A.contact.id}/notes/x/`,
  ]) {
    const r = await A.owner.client.get(path);
    assert.equal(r.status, 404, path);
  }
  // Upper-case uuids name the same resource.
  assert.equal((await A.owner.client.get(`/v1/workspaces/${A.ws.id.toUpperCase()}`)).status, 200);
});

// The first bytes of an SSE response (or the whole error), then the connection is dropped.
async function sseOpen(url, headers = {}) {
  const ctl = new AbortController();
  const res = await fetch(url, { headers, signal: ctl.signal });
  let first = '';
  if (res.status === 200) {
    const reader = res.body.getReader();
    const { value } = await reader.read();
    first = Buffer.from(value).toString();
  } else {
    first = await res.text();
  }
  ctl.abort();
  return { status: res.status, type: res.headers.get('content-type'), first };
}

test('the SSE stream admits members only: the API is its authorizer', async () => {
  const url = (w) => `${fx.srv.url}/v1/workspaces/${w.ws.id}/events/stream`;
  const ok = await sseOpen(url(A), { authorization: `Bearer ${A.agent.token}` });
  assert.equal(ok.status, 200);
  assert.match(ok.type, /^text\/event-stream/);
  assert.match(ok.first, /retry:/);
  const viaQuery = await sseOpen(`${url(A)}?access_token=${A.owner.token}`);
  assert.equal(viaQuery.status, 200);
  const other = await sseOpen(url(B), { authorization: `Bearer ${A.owner.token}` });
  assert.equal(other.status, 404);
  assert.equal(JSON.parse(other.first).error.code, 'workspace_not_found');
  assert.equal((await sseOpen(url(A))).status, 401);
  assert.equal((await sseOpen(url(A), { authorization: 'Bearer sbt_nope' })).status, 401);
});

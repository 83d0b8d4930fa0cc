// The website chat end to end: a visitor's session is a contact; the visitor's messages land in
// the same contact and conversation model; agents reply with channel chat; each visitor's stream
// (an EventSource, as a browser would open it) shows that visitor's conversation and nothing of
// anyone else's; tokens open for their own workspace only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, eventually, startAll, stopAll, workspace } from './messaging_support.mjs';
import { openEventSource } from './sse_support.mjs';

const DB = 'e2e_messaging_chat';
const TYPES = ['MessageReceived', 'MessageQueued', 'MessageSent', 'MessageDelivered', 'MessageRead', 'MessageFailed', 'NoteAdded', 'ContactUpdated'];
let env, W;

before(async () => {
  env = await startAll(DB);
  W = await workspace(env.srv.url);
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const agent = () => new Client(env.srv.url, W.owner.token);
const visitorClient = (token) => new Client(env.srv.url, token);

async function session(body = {}) {
  const r = await new Client(env.srv.url).post(`/v1/chat/${W.ws.id}/sessions`, body);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  return r.json;
}

const stream = (token, after) =>
  openEventSource(`${env.srv.url}/v1/chat/${W.ws.id}/stream?access_token=${encodeURIComponent(token)}${after !== undefined ? `&after=${after}` : ''}`, { types: TYPES });

test('a visitor chats; an agent answers; each stream shows its own conversation only', async () => {
  const a = await session({ name: 'Ana Visitor', email: 'ana@example.com' });
  const b = await session();
  assert.match(a.token, /^[A-Za-z0-9_-]+$/);
  assert.notEqual(a.contact_id, b.contact_id);
  const sa = stream(a.token, 0);
  const sb = stream(b.token, 0);

  const m1 = await visitorClient(a.token).post(`/v1/chat/${W.ws.id}/messages`, { body: 'Hi, is anyone there?' });
  assert.equal(m1.status, 202, m1.text);
  assert.equal(m1.json.channel, 'chat');
  assert.equal(m1.json.direction, 'inbound');
  const m2 = await visitorClient(b.token).post(`/v1/chat/${W.ws.id}/messages`, { body: 'B here' });
  assert.equal(m2.status, 202);

  // The visitor is a contact like any other: the agent sees them and their thread, and replies.
  const g = await agent().get(`/v1/workspaces/${W.ws.id}/contacts/${a.contact_id}`);
  assert.equal(g.status, 200);
  assert.equal(g.json.name, 'Ana Visitor');
  const reply = await agent().post(`/v1/workspaces/${W.ws.id}/contacts/${a.contact_id}/messages`, { channel: 'chat', body: 'Hello Ana, how can we help?' });
  assert.equal(reply.status, 202, reply.text);
  // An agent's private note on the visitor's contact must never reach the visitor.
  assert.equal((await agent().post(`/v1/workspaces/${W.ws.id}/contacts/${a.contact_id}/notes`, { body: 'seems keen', private: true })).status, 201);

  await sa.until(() => sa.events.some((e) => e.type === 'MessageSent' && e.data.data.message_id === reply.json.id), 20000, 'the reply, sent');
  await sb.until(() => sb.events.some((e) => e.type === 'MessageReceived'), 20000, "B's own message");
  assert.deepEqual(
    sa.events.filter((e) => e.type === 'MessageReceived' || e.type === 'MessageQueued').map((e) => e.data.data.body),
    ['Hi, is anyone there?', 'Hello Ana, how can we help?'],
  );
  for (const e of sa.events) assert.equal(e.data.stream, `contact-${a.contact_id}`);
  assert.ok(!sa.events.some((e) => e.type === 'NoteAdded' || e.type === 'ContactUpdated'), 'nothing but messages');
  // B saw nothing of A's conversation.
  await visitorClient(b.token).post(`/v1/chat/${W.ws.id}/messages`, { body: 'B again' });
  await sb.until(() => sb.events.filter((e) => e.type === 'MessageReceived').length === 2, 20000, "B's second message");
  for (const e of sb.events) assert.equal(e.data.stream, `contact-${b.contact_id}`);
  assert.ok(!JSON.stringify(sb.events).includes('Ana'));
  sa.close();
  sb.close();

  // The agent's thread of A (read model) has both messages.
  await eventually(async () => {
    const t = await agent().get(`/v1/workspaces/${W.ws.id}/contacts/${a.contact_id}/messages`);
    return t.json.items.length === 2 && t.json.items[1].status === 'sent';
  });
});

test('tokens: missing, forged, or another workspace\'s -> 401; malformed bodies -> 400', async () => {
  const a = await session();
  const other = await workspace(env.srv.url);
  const post = (ws, token, body) => visitorClient(token).post(`/v1/chat/${ws}/messages`, body);
  assert.equal((await new Client(env.srv.url).post(`/v1/chat/${W.ws.id}/messages`, { body: 'x' })).status, 401);
  // Forged: one character in the middle changed to another (replacing the last two with 'AA' was no
  // change at all for the one token in a few hundred that already ended so).
  const mid = a.token.length >> 1;
  const forged = a.token.slice(0, mid) + (a.token[mid] === 'A' ? 'B' : 'A') + a.token.slice(mid + 1);
  assert.notEqual(forged, a.token);
  assert.equal((await post(W.ws.id, forged, { body: 'x' })).status, 401);
  assert.equal((await post(W.ws.id, 'garbage', { body: 'x' })).status, 401);
  assert.equal((await post(other.ws.id, a.token, { body: 'x' })).status, 401, "a token opens for its own workspace only");
  // An agent's bearer token is not a visitor's.
  assert.equal((await post(W.ws.id, W.owner.token, { body: 'x' })).status, 401);
  const st = await fetch(`${env.srv.url}/v1/chat/${other.ws.id}/stream?access_token=${encodeURIComponent(a.token)}`);
  assert.equal(st.status, 401);
  for (const body of [{}, { body: '' }, { body: 'x'.repeat(1601) }, { body: 'x', extra: 1 }])
    assert.equal((await post(W.ws.id, a.token, body)).status, 400, JSON.stringify(body));
  // A session for a workspace that does not exist.
  const none = await new Client(env.srv.url).post(`/v1/chat/00000000-0000-7000-8000-000000000000/sessions`, {});
  assert.equal(none.status, 404);
  // CORS preflight.
  const pre = await fetch(`${env.srv.url}/v1/chat/${W.ws.id}/messages`, { method: 'OPTIONS', headers: { origin: 'https://acme.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
});

test('public endpoints are rate-limited: sessions per address, messages per visitor; 429 stores nothing', async () => {
  await env.srv.stop();
  await env.restart({ SWITCHBOARD_CHAT_SESSIONS_PER_MINUTE: '1', SWITCHBOARD_CHAT_MESSAGES_PER_MINUTE: '1' });
  const count = async () => (await agent().get(`/v1/workspaces/${W.ws.id}/events?limit=1000`)).json.items.length;
  // A burst of twice the rate per minute, then 429 with Retry-After.
  const a = await session();
  await session();
  const before = await count();
  const third = await new Client(env.srv.url).post(`/v1/chat/${W.ws.id}/sessions`, {});
  assert.equal(third.status, 429, third.text);
  assert.equal(third.json.error.code, 'rate_limited');
  assert.ok(Number(third.headers.get('retry-after')) >= 1);
  assert.equal(third.headers.get('access-control-allow-origin'), '*');
  const post = (body) => visitorClient(a.token).post(`/v1/chat/${W.ws.id}/messages`, body);
  assert.equal((await post({ body: 'one' })).status, 202);
  assert.equal((await post({ body: 'two' })).status, 202);
  const mid = await count();
  assert.equal(mid, before + 2, 'two messages stored');
  const refused = await post({ body: 'three' });
  assert.equal(refused.status, 429, refused.text);
  assert.equal(await count(), mid, 'a refused message stores nothing');
  const m = await (await fetch(`${env.srv.url}/metrics`)).text();
  assert.match(m, /^switchboard_chat_rate_limited_total 2$/m);
});

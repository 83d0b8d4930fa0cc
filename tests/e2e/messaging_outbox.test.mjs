// The outbox and the scheduler end to end (SPEC §8), against the fake Twilio: a POSTed message goes
// out once with the workspace's key and a StatusCallback; status callbacks (signed) move it forward
// and never back; 500s then success make one send; Twilio's refusals fail it with the code; opt-outs
// refuse it; a crash after Twilio took the message (or before) sends it exactly once; a scheduled
// message goes out on its second after a restart; a cancelled one never does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  eventually,
  exportEvents,
  inboundParams,
  postTwilio,
  PUBLIC_URL,
  startAll,
  stopAll,
  twilioWorkspace,
} from './messaging_support.mjs';

const DB = 'e2e_messaging_outbox';
let env, W;
let phoneSeq = 0;
const newPhone = () => `+1415556${String(1000 + ++phoneSeq).padStart(4, '0')}`;

before(async () => {
  // Fast retries and reconciling, so the test does not wait out production delays.
  env = await startAll(DB, { env: { SWITCHBOARD_OUTBOX_RETRY_BASE_MS: '100', SWITCHBOARD_OUTBOX_RECONCILE_MS: '1500' } });
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 2 });
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const api = () => new Client(env.srv.url, W.owner.token); // the server's URL changes with a restart
const MSGS = () => `/2010-04-01/Accounts/${W.acct.sid}/Messages.json`;

async function newContact(phone = newPhone()) {
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts`, { name: 'Carla Contact', phone });
  assert.equal(r.status, 201, r.text);
  return { id: r.json.id, phone };
}

// Twilio's requests for messages to phone.
const sendsTo = (phone) => env.fake.requests({ path: MSGS(), method: 'POST' }).filter((q) => q.form.some(([k, v]) => k === 'To' && v === phone));
// Messages Twilio actually holds for phone.
const createdFor = (phone) => env.fake.snapshot().accounts[W.acct.sid].messages.filter((m) => m.to === phone);
const eventsOf = (contact, types) => exportEvents(env.db, { stream: `contact-${contact}`, types });

async function outcome(contact, mid) {
  return eventually(() => {
    const evs = eventsOf(contact, ['MessageSent', 'MessageFailed']).filter((e) => e.data.message_id === mid);
    return evs.length ? evs : null;
  }, { timeoutMs: 20000 });
}

test('a message goes out once, with the key and a StatusCallback; statuses move it forward only', async () => {
  const c = await newContact();
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'Your plumber arrives at 9' });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.status, 'queued');
  assert.equal(r.json.direction, 'outbound');
  assert.equal(r.json.to, c.phone);
  assert.equal(r.json.segments, 1);
  const [sent] = await outcome(c.id, r.json.id);
  assert.equal(sent.type, 'MessageSent');
  const reqs = sendsTo(c.phone);
  assert.equal(reqs.length, 1);
  const form = Object.fromEntries(reqs[0].form);
  assert.equal(form.Body, 'Your plumber arrives at 9');
  assert.equal(form.From, W.acct.numbers.map((n) => n.phone_number).sort()[0]);
  assert.equal(reqs[0].auth.user, W.config.api_key_sid, 'sent with the API key');
  assert.equal(form.StatusCallback, `${PUBLIC_URL}/webhooks/twilio/messaging/status?w=${W.ws.id}&c=${c.id}&m=${r.json.id}`);
  const held = createdFor(c.phone);
  assert.equal(held.length, 1);
  assert.equal(sent.data.provider_id, held[0].sid);
  assert.equal(eventsOf(c.id, ['MessageSendAttempted']).length, 1);

  // Twilio's callbacks, signed, out of order: delivered, then a late sent, then delivered again.
  const cb = new URL(form.StatusCallback);
  const status = (s, extra = {}) =>
    postTwilio(env.srv, cb.pathname, { MessageSid: held[0].sid, AccountSid: W.acct.sid, MessageStatus: s, From: form.From, To: c.phone, ...extra }, { token: W.acct.token, query: cb.search });
  for (const s of ['sending', 'delivered', 'sent', 'delivered', 'undelivered']) assert.equal((await status(s)).status, 200, s);
  const after = eventsOf(c.id, ['MessageSent', 'MessageDelivered', 'MessageFailed']);
  assert.deepEqual(after.map((e) => e.type), ['MessageSent', 'MessageDelivered']);
  // A callback with a forged signature stores nothing.
  const forged = await postTwilio(env.srv, cb.pathname, { MessageSid: held[0].sid, AccountSid: W.acct.sid, MessageStatus: 'read' }, { sign: 'AAAA', query: cb.search });
  assert.equal(forged.status, 403);
  // The thread (read model) shows it delivered.
  await eventually(async () => {
    const g = await api().get(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`);
    return g.status === 200 && g.json.items.some((m) => m.id === r.json.id && m.status === 'delivered' && m.provider_id === held[0].sid);
  });
});

test('a reply goes out from the number the contact wrote to', async () => {
  const c = await newContact();
  const second = W.acct.numbers.map((n) => n.phone_number).sort()[1];
  const inbound = inboundParams(W.acct, { from: c.phone, to: second, body: 'hi there' });
  assert.equal((await postTwilio(env.srv, '/webhooks/twilio/messaging', inbound, { token: W.acct.token })).status, 200);
  await eventually(async () => {
    const g = await api().get(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`);
    return g.json.items.length === 1; /* the read model has the inbound message */
  });
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'hello back' });
  assert.equal(r.status, 202);
  assert.equal(r.json.from, second);
  await outcome(c.id, r.json.id);
  assert.equal(Object.fromEntries(sendsTo(c.phone)[0].form).From, second);
});

test('a thread pages by cursor: oldest first, no message twice or missed', async () => {
  const c = await newContact();
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: `page ${i}` });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.id);
  }
  const path = `/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`;
  await eventually(async () => (await api().get(path)).json.items.length === 5);
  const seen = [];
  let cursor = null;
  for (let page = 0; page < 4; page++) {
    const g = await api().get(`${path}?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(g.status, 200, g.text);
    assert.ok(g.json.items.length <= 2);
    seen.push(...g.json.items.map((m) => m.id));
    cursor = g.json.next_cursor;
    if (cursor === null) break;
  }
  assert.equal(cursor, null, 'the last page says so');
  assert.deepEqual(seen, ids);
});

test('Twilio 500s then success: one message; 429 waits; a refusal fails it with the code', async () => {
  const c = await newContact();
  env.fake.fault({ path: MSGS(), method: 'POST', status: 500, times: 2 });
  env.fake.fault({ path: MSGS(), method: 'POST', status: 429, headers: { 'Retry-After': '1' }, times: 1 });
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'retry me' });
  const [ev] = await outcome(c.id, r.json.id);
  assert.equal(ev.type, 'MessageSent');
  assert.equal(sendsTo(c.phone).length, 4);
  assert.equal(createdFor(c.phone).length, 1, 'Twilio holds one message');
  assert.equal(eventsOf(c.id, ['MessageSendAttempted']).length, 4);
  assert.equal(eventsOf(c.id, ['MessageSent']).length, 1);

  const d = await newContact();
  env.fake.fault({ path: MSGS(), method: 'POST', status: 400, body: { code: 21610, message: 'Attempt to send to unsubscribed recipient', status: 400 } });
  const r2 = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${d.id}/messages`, { channel: 'sms', body: 'nope' });
  const [failed] = await outcome(d.id, r2.json.id);
  assert.equal(failed.type, 'MessageFailed');
  assert.equal(failed.data.code, '21610');
  assert.equal(failed.data.error, 'Attempt to send to unsubscribed recipient');
  assert.equal(sendsTo(d.phone).length, 1, 'a refusal is not retried');
});

test('STOP opts out: later SMS are refused with a clear error; START opts back in', async () => {
  const c = await newContact();
  const stop = inboundParams(W.acct, { from: c.phone, body: 'STOP' });
  assert.equal((await postTwilio(env.srv, '/webhooks/twilio/messaging', stop, { token: W.acct.token })).status, 200);
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'are you there?' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'opted_out');
  assert.match(r.json.error.message, /opted out/);
  const start = inboundParams(W.acct, { from: c.phone, body: 'start' });
  assert.equal((await postTwilio(env.srv, '/webhooks/twilio/messaging', start, { token: W.acct.token })).status, 200);
  const ok = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'welcome back' });
  assert.equal(ok.status, 202);
  await outcome(c.id, ok.json.id);
});

test('a lost answer: Twilio took the message, the connection dropped: found, not sent again', async () => {
  const c = await newContact();
  env.fake.fault({ path: MSGS(), method: 'POST', action: 'drop', apply: true });
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'did it arrive?' });
  const [ev] = await outcome(c.id, r.json.id);
  assert.equal(ev.type, 'MessageSent');
  assert.equal(createdFor(c.phone).length, 1, 'Twilio holds one message');
  assert.equal(ev.data.provider_id, createdFor(c.phone)[0].sid);
});

test('a crash between sending and recording: no second send after the restart', async () => {
  const c = await newContact();
  // Twilio takes the message and never answers; the server dies while it waits.
  env.fake.fault({ path: MSGS(), method: 'POST', action: 'hang', apply: true });
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'exactly once' });
  assert.equal(r.status, 202);
  await eventually(() => createdFor(c.phone).length === 1);
  await env.srv.kill();
  assert.equal(eventsOf(c.id, ['MessageSent', 'MessageFailed']).length, 0);
  assert.equal(eventsOf(c.id, ['MessageSendAttempted']).length, 1);

  // And one that never reached Twilio: the server dies while the request is dropped on the floor.
  await env.restart();
  const d = await newContact();
  env.fake.fault({ path: MSGS(), method: 'POST', action: 'hang' });
  const r2 = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${d.id}/messages`, { channel: 'sms', body: 'late but once' });
  await eventually(() => sendsTo(d.phone).length === 1);
  await env.srv.kill();
  assert.equal(createdFor(d.phone).length, 0);

  await env.restart();
  const [ev] = await outcome(c.id, r.json.id);
  assert.equal(ev.type, 'MessageSent');
  assert.equal(ev.data.provider_id, createdFor(c.phone)[0].sid);
  assert.equal(sendsTo(c.phone).length, 1, 'no second request for the message Twilio had');
  const [ev2] = await outcome(d.id, r2.json.id);
  assert.equal(ev2.type, 'MessageSent');
  assert.equal(createdFor(d.phone).length, 1, 'the message Twilio never got went out once');
});

test('a scheduled message goes out on its second, after a restart; a cancelled one never', async () => {
  const c = await newContact();
  const at = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
  const r = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'reminder', send_at: at.toISOString() });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.status, 'scheduled');
  const gone = await api().post(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`, { channel: 'sms', body: 'cancelled', send_at: at.toISOString() });
  const del = await api().del(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages/${gone.json.id}`);
  assert.equal(del.status, 204, del.text);
  assert.equal((await api().del(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages/${gone.json.id}`)).status, 204, 'cancelling twice is a repeat');
  // Restart in between: the timer is reloaded from the read model and the log.
  assert.equal(await env.srv.stop(), 0);
  await env.restart();
  const [ev] = await outcome(c.id, r.json.id);
  assert.equal(ev.type, 'MessageSent');
  const req = sendsTo(c.phone);
  assert.equal(req.length, 1);
  assert.equal(Object.fromEntries(req[0].form).Body, 'reminder');
  const late = new Date(req[0].time) - at;
  assert.ok(late >= 0 && late < 1500, `sent ${late} ms after its time`);
  const queued = eventsOf(c.id, ['MessageQueued']).find((e) => e.data.message_id === r.json.id);
  assert.ok(queued.data.queued_at, 'dispatched by the scheduler');
  // Cancelling what already went: 409.
  const late2 = await api().del(`/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages/${r.json.id}`);
  assert.equal(late2.status, 409);
  assert.equal(late2.json.error.code, 'not_scheduled');
});

test('bad requests: 400 naming the field, 404 for strangers', async () => {
  const c = await newContact();
  const base = `/v1/workspaces/${W.ws.id}/contacts/${c.id}/messages`;
  for (const [body, field] of [
    [{ body: 'x' }, 'channel'],
    [{ channel: 'fax', body: 'x' }, 'channel'],
    [{ channel: 'sms' }, 'body'],
    [{ channel: 'sms', body: 'x'.repeat(1601) }, 'body'],
    [{ channel: 'sms', body: 'x', send_at: 'tomorrow' }, 'send_at'],
    [{ channel: 'sms', body: 'x', colour: 'red' }, 'colour'],
  ]) {
    const r = await api().post(base, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.field, field, JSON.stringify(body));
  }
  const long = await api().post(base, { channel: 'sms', body: 'ж'.repeat(71) });
  assert.equal(long.status, 202);
  assert.equal(long.json.segments, 2, 'UCS-2: 67 per part past 70');
  assert.equal((await api().post(`/v1/workspaces/${W.ws.id}/contacts/00000000-0000-7000-8000-000000000000/messages`, { channel: 'sms', body: 'x' })).status, 404);
});

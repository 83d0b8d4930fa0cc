// Call control end to end (SPEC §5, §8; docs/voice_control.md), against the fake Twilio: the
// Calls.json request of an outbound call and the live-call updates of park, unpark, cold and warm
// transfer and hang-up, each TwiML document parsed with a real XML parser; Twilio fetching our
// TwiML URLs (signed as Twilio signs them); illegal operations answered 409 with nothing stored;
// the call board after each step; the parking limit ringing the parker, across a restart; another
// workspace's call is 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DOMParser } from '@xmldom/xmldom';
import {
  Client,
  countEvents,
  eventually,
  newSid,
  postTwilio,
  PUBLIC_URL,
  startAll,
  stopAll,
  twilioWorkspace,
  workspace,
} from './messaging_support.mjs';

const DB = 'e2e_calls_control';
let env, W, agentB;
let phoneSeq = 0;
const newPhone = () => `+1415557${String(1000 + ++phoneSeq).padStart(4, '0')}`;

// A member's browser identity in W's workspace (docs/voice.md): w<workspace hex>_u<user hex>.
const hex = (u) => u.replace(/-/g, '');
const identity = (userId) => `w${hex(W.ws.id)}_u${hex(userId)}`;

before(async () => {
  env = await startAll(DB);
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 2 });
  // A second agent in the workspace.
  const b = await new Client(env.srv.url).post('/v1/auth/signup', { email: `b-${Date.now()}@example.com`, password: 'correct horse 2', name: 'Bea' });
  assert.equal(b.status, 201, b.text);
  const m = await api().post(`/v1/workspaces/${W.ws.id}/members`, { email: b.json.user.email, role: 'agent' });
  assert.equal(m.status, 201, m.text);
  agentB = { id: b.json.user.id, client: new Client(env.srv.url, b.json.token), token: b.json.token };
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const api = () => new Client(env.srv.url, W.owner.token);
const asB = () => new Client(env.srv.url, agentB.token);
const CALLS = () => `/2010-04-01/Accounts/${W.acct.sid}/Calls.json`;
const callsPath = (ws = W.ws.id) => `/v1/workspaces/${ws}/calls`;
const form = (q) => Object.fromEntries(q.form);
const formAll = (q, k) => q.form.filter(([n]) => n === k).map(([, v]) => v);

// TwiML parsed strictly: any well-formedness error throws.
function parseTwiml(xml) {
  const doc = new DOMParser({
    onError: (level, msg) => {
      throw new Error(`TwiML is not well-formed (${level}): ${msg}\n${xml}`);
    },
  }).parseFromString(xml, 'text/xml');
  const root = doc.documentElement;
  assert.equal(root.nodeName, 'Response', xml);
  return root;
}
const children = (el) => Array.from(el.childNodes).filter((n) => n.nodeType === 1);
function only(el, name) {
  const c = children(el);
  assert.equal(c.length, 1, `one <${name}> in <${el.nodeName}>`);
  assert.equal(c[0].nodeName, name);
  return c[0];
}

// Calls.json requests to `to`, and live-call updates of sid.
const creates = (to) => env.fake.requests({ path: CALLS(), method: 'POST' }).filter((q) => form(q).To === to);
const updates = (sid) => env.fake.requests({ path: `/2010-04-01/Accounts/${W.acct.sid}/Calls/${sid}.json`, method: 'POST' });

// The path and query of one of our URLs (as Twilio was told it).
function ours(url) {
  assert.ok(url.startsWith(PUBLIC_URL + '/webhooks/twilio/voice/'), url);
  const rest = url.slice(PUBLIC_URL.length);
  const i = rest.indexOf('?');
  return { path: rest.slice(0, i), query: rest.slice(i) };
}

// Twilio fetching one of our TwiML URLs.
async function fetchTwiml(url, params) {
  const { path, query } = ours(url);
  const r = await postTwilio(env.srv, path, { AccountSid: W.acct.sid, ApiVersion: '2010-04-01', ...params }, { token: W.acct.token, query });
  return r;
}

async function board(status = 'live') {
  const r = await api().get(`${callsPath()}?status=${status}`);
  assert.equal(r.status, 200, r.text);
  return r.json.items;
}
const onBoard = (id, pred) => eventually(async () => (await board()).find((c) => c.id === id && pred(c)), { timeoutMs: 10000 });

// An outbound call, dialled and answered: resolves to {id, sid, phone}.
async function liveCall() {
  const phone = newPhone();
  const r = await api().post(callsPath(), { to: phone });
  assert.equal(r.status, 201, r.text);
  const req = await eventually(() => creates(phone)[0]);
  const sid = await eventually(async () => (await api().get(`${callsPath()}/${r.json.id}`)).json.call_sid);
  const a = await fetchTwiml(form(req).Url, { CallSid: sid, CallStatus: 'in-progress', From: form(req).From, To: phone, Direction: 'outbound-api' });
  assert.equal(a.status, 200, a.text);
  return { id: r.json.id, sid, phone, req, answer: a };
}

test('outbound: Calls.json to the customer, the CallSid recorded, the agent dialled when they answer', async () => {
  const phone = newPhone();
  const r = await api().post(callsPath(), { to: phone });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.status, 'queued');
  assert.equal(r.json.direction, 'outbound');
  assert.equal(r.json.to, phone);
  assert.equal(r.json.agent_id, W.owner.user.id);
  assert.ok(W.acct.numbers.some((n) => n.phone_number === r.json.from), 'from one of the workspace numbers');

  const req = await eventually(() => creates(phone)[0]);
  const f = form(req);
  assert.equal(f.From, r.json.from);
  assert.equal(f.Url, `${PUBLIC_URL}/webhooks/twilio/voice/calls/connect?w=${W.ws.id}&c=${r.json.id}`);
  assert.equal(f.StatusCallback, `${PUBLIC_URL}/webhooks/twilio/voice/status?w=${W.ws.id}&call=${r.json.id}`);
  assert.deepEqual(formAll(req, 'StatusCallbackEvent'), ['initiated', 'ringing', 'answered', 'completed']);
  assert.equal(f.Twiml, undefined);
  assert.ok(req.auth.user.startsWith('SK'), 'the workspace API key authenticates');
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(creates(phone).length, 1, 'dialled once');

  const sid = env.fake.snapshot().accounts[W.acct.sid].calls.find((c) => c.to === phone).sid;
  const got = await eventually(async () => {
    const g = await api().get(`${callsPath()}/${r.json.id}`);
    return g.json.call_sid === sid ? g : null;
  });
  assert.equal(got.status, 200);
  assert.match(got.headers.get('etag'), /^"\d+"$/);

  // Twilio fetches the connect URL when the customer answers: the agent's browser is dialled.
  const a = await fetchTwiml(f.Url, { CallSid: sid, CallStatus: 'in-progress', From: f.From, To: phone });
  assert.equal(a.status, 200, a.text);
  assert.match(a.headers.get('content-type'), /text\/xml/);
  const dial = only(parseTwiml(a.text), 'Dial');
  assert.equal(dial.getAttribute('timeout'), '20');
  assert.equal(dial.getAttribute('action'), `${PUBLIC_URL}/webhooks/twilio/voice/calls/fallback?w=${W.ws.id}&c=${r.json.id}&s=2`);
  assert.equal(only(dial, 'Client').textContent, identity(W.owner.user.id));
  const c = await onBoard(r.json.id, (x) => x.status === 'in-progress');
  assert.equal(c.agent_id, W.owner.user.id);
  assert.ok(c.answered_at);

  // A forged connect (wrong signature) is refused and stores nothing.
  const before = countEvents(env.db, `stream = 'call-${r.json.id}'`);
  const { path, query } = ours(f.Url);
  const bad = await postTwilio(env.srv, path, { AccountSid: W.acct.sid, CallSid: sid, CallStatus: 'in-progress' }, { sign: 'bm90IGEgc2lnbmF0dXJl', query });
  assert.equal(bad.status, 403);
  assert.equal(countEvents(env.db, `stream = 'call-${r.json.id}'`), before);
});

test('outbound to a contact: its number is called and the call is filed under it', async () => {
  const phone = newPhone();
  const ct = await api().post(`/v1/workspaces/${W.ws.id}/contacts`, { name: 'Carla', phone });
  assert.equal(ct.status, 201, ct.text);
  const r = await api().post(callsPath(), { contact_id: ct.json.id, agent_id: agentB.id });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.to, phone);
  assert.equal(r.json.contact_id, ct.json.id);
  assert.equal(r.json.agent_id, agentB.id);
  await eventually(() => creates(phone)[0]);
  // A number alone finds its contact too.
  const r2 = await api().post(callsPath(), { to: phone });
  assert.equal(r2.json.contact_id, ct.json.id);
  // Bad input.
  assert.equal((await api().post(callsPath(), {})).status, 400);
  assert.equal((await api().post(callsPath(), { to: 'not a number' })).status, 400);
  assert.equal((await api().post(callsPath(), { to: phone, colour: 'red' })).status, 400);
});

test('park, unpark, cold transfer (with the way back), warm transfer, hang up; the board follows', async () => {
  const call = await liveCall();
  const url = `${callsPath()}/${call.id}`;

  // Illegal: unpark a call that is not parked.
  let n = countEvents(env.db, `stream = 'call-${call.id}'`);
  let r = await api().post(`${url}/unpark`, {});
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'invalid_transition');
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n, 'nothing stored');

  // Park: the customer's leg into the call's parking room.
  r = await api().post(`${url}/park`, {});
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'parked');
  assert.ok(r.json.parked_slot >= 1);
  assert.equal(r.json.parked_by, W.owner.user.id);
  const slot = r.json.parked_slot;
  const u1 = await eventually(() => updates(call.sid)[0]);
  let conf = only(only(parseTwiml(form(u1).Twiml), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `park-${call.id}`);
  assert.equal(conf.getAttribute('startConferenceOnEnter'), 'false');
  assert.equal(conf.getAttribute('endConferenceOnExit'), 'true');
  let b = await onBoard(call.id, (x) => x.status === 'parked');
  assert.equal(b.parked_slot, slot);
  assert.equal(b.parked_by, W.owner.user.id);
  assert.ok(Date.parse(b.parked_at) > 0);

  // Illegal while parked: transfer (unpark first).
  n = countEvents(env.db, `stream = 'call-${call.id}'`);
  r = await api().post(`${url}/transfer`, { to_agent: agentB.id, mode: 'cold' });
  assert.equal(r.status, 409, r.text);
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n, 'nothing stored');

  // Unpark by another agent: their browser is rung into exactly that room.
  r = await asB().post(`${url}/unpark`, {});
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'in-progress');
  assert.equal(r.json.agent_id, agentB.id);
  assert.equal(r.json.parked_slot, null);
  const leg = await eventually(() => creates(`client:${identity(agentB.id)}`)[0]);
  conf = only(only(parseTwiml(form(leg).Twiml), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `park-${call.id}`);
  assert.equal(conf.getAttribute('startConferenceOnEnter'), 'true');
  assert.equal(conf.getAttribute('endConferenceOnExit'), 'true');
  assert.ok(W.acct.numbers.some((x) => x.phone_number === form(leg).From));
  b = await onBoard(call.id, (x) => x.status === 'in-progress' && x.agent_id === agentB.id);
  assert.equal(b.parked_slot, null);

  // B does not pick up: the call goes back to the lot, in its slot, still the owner's.
  assert.ok(form(leg).StatusCallback.startsWith(`${PUBLIC_URL}/webhooks/twilio/voice/calls/unanswered?w=${W.ws.id}&c=${call.id}&u=`), form(leg).StatusCallback);
  assert.match(form(leg).StatusCallback, /&u=\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  assert.deepEqual(formAll(leg, 'StatusCallbackEvent'), ['completed']);
  const legSid = env.fake.snapshot().accounts[W.acct.sid].calls.find((c) => c.to === `client:${identity(agentB.id)}`).sid;
  let a = await fetchTwiml(form(leg).StatusCallback, { CallSid: legSid, CallStatus: 'no-answer' });
  assert.equal(a.status, 200, a.text);
  b = await onBoard(call.id, (x) => x.status === 'parked');
  assert.equal(b.parked_slot, slot);
  assert.equal(b.parked_by, W.owner.user.id);
  const u1b = await eventually(() => updates(call.sid)[1]);
  assert.equal(only(only(parseTwiml(form(u1b).Twiml), 'Dial'), 'Conference').textContent, `park-${call.id}`);
  // A repeat of that report, or one after B answered the next ring, changes nothing.
  n = countEvents(env.db, `stream = 'call-${call.id}'`);
  await fetchTwiml(form(leg).StatusCallback, { CallSid: legSid, CallStatus: 'no-answer' });
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n);
  r = await asB().post(`${url}/unpark`, {});
  assert.equal(r.status, 200, r.text);
  await eventually(() => creates(`client:${identity(agentB.id)}`)[1]);
  await onBoard(call.id, (x) => x.status === 'in-progress' && x.agent_id === agentB.id);
  await fetchTwiml(form(leg).StatusCallback, { CallSid: legSid, CallStatus: 'no-answer' });
  assert.equal((await api().get(url)).json.status, 'in-progress', 'an older unparking does not send it back');

  // Cold transfer to the owner: the customer's leg dials them; nobody answers: back to B, then the queue.
  r = await asB().post(`${url}/transfer`, { to_agent: W.owner.user.id, mode: 'cold' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.agent_id, W.owner.user.id);
  const u2 = await eventually(() => updates(call.sid)[2]);
  let dial = only(parseTwiml(form(u2).Twiml), 'Dial');
  assert.equal(only(dial, 'Client').textContent, identity(W.owner.user.id));
  assert.equal(dial.getAttribute('action'), `${PUBLIC_URL}/webhooks/twilio/voice/calls/fallback?w=${W.ws.id}&c=${call.id}&t=1&s=1`);
  await onBoard(call.id, (x) => x.agent_id === W.owner.user.id);
  a = await fetchTwiml(dial.getAttribute('action'), { CallSid: call.sid, DialCallStatus: 'no-answer' });
  assert.equal(a.status, 200, a.text);
  dial = only(parseTwiml(a.text), 'Dial');
  assert.equal(only(dial, 'Client').textContent, identity(agentB.id), 'back to the first agent');
  await onBoard(call.id, (x) => x.agent_id === agentB.id);
  assert.equal(dial.getAttribute('action'), `${PUBLIC_URL}/webhooks/twilio/voice/calls/fallback?w=${W.ws.id}&c=${call.id}&s=2`);
  // (B answers: the call goes on with B.)

  // Warm transfer to a number: a conference with the first agent and the target; the target does
  // not answer: the customer goes back to the first agent.
  const target = newPhone();
  r = await asB().post(`${url}/transfer`, { to_number: target, mode: 'warm' });
  assert.equal(r.status, 200, r.text);
  const u3 = await eventually(() => updates(call.sid)[3]);
  conf = only(only(parseTwiml(form(u3).Twiml), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `call-${call.id}`);
  assert.equal(conf.getAttribute('startConferenceOnEnter'), 'false');
  const first = await eventually(() => creates(`client:${identity(agentB.id)}`)[2]);
  conf = only(only(parseTwiml(form(first).Twiml), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `call-${call.id}`);
  assert.equal(conf.getAttribute('startConferenceOnEnter'), 'true');
  assert.equal(conf.getAttribute('endConferenceOnExit'), 'false', 'the first agent may leave');
  const tleg = await eventually(() => creates(target)[0]);
  conf = only(only(parseTwiml(form(tleg).Twiml), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `call-${call.id}`);
  assert.equal(form(tleg).StatusCallback, `${PUBLIC_URL}/webhooks/twilio/voice/calls/target?w=${W.ws.id}&c=${call.id}&t=2`);
  assert.deepEqual(formAll(tleg, 'StatusCallbackEvent'), ['completed']);
  await onBoard(call.id, (x) => x.agent_id === null && x.status === 'in-progress');
  const tsid = env.fake.snapshot().accounts[W.acct.sid].calls.find((c) => c.to === target).sid;
  a = await fetchTwiml(form(tleg).StatusCallback, { CallSid: tsid, CallStatus: 'no-answer' });
  assert.equal(a.status, 200, a.text);
  const u4 = await eventually(() => updates(call.sid)[4]);
  dial = only(parseTwiml(form(u4).Twiml), 'Dial');
  assert.equal(only(dial, 'Client').textContent, identity(agentB.id));
  await onBoard(call.id, (x) => x.agent_id === agentB.id);
  // The same report again changes nothing.
  n = countEvents(env.db, `stream = 'call-${call.id}'`);
  await fetchTwiml(form(tleg).StatusCallback, { CallSid: tsid, CallStatus: 'no-answer' });
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n);

  // Hang up.
  r = await asB().post(`${url}/hangup`);
  assert.equal(r.status, 200, r.text);
  const u5 = await eventually(() => updates(call.sid)[5]);
  assert.equal(form(u5).Status, 'completed');
  assert.equal(form(u5).Twiml, undefined);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(updates(call.sid).length, 6, 'one request per change');

  // Twilio reports the end through the StatusCallback the dial gave it (the inbound side's status
  // webhook, which our ids route); then the call is over: a transfer is 409 and stores nothing.
  const st = await fetchTwiml(form(call.req).StatusCallback, { CallSid: call.sid, CallStatus: 'completed', CallDuration: '42', From: form(call.req).From, To: call.phone, Direction: 'outbound-api' });
  assert.equal(st.status, 200, st.text);
  await eventually(async () => !(await board()).some((x) => x.id === call.id));
  const done = await api().get(url);
  assert.equal(done.json.status, 'completed');
  assert.ok(done.json.duration_seconds >= 0);
  n = countEvents(env.db, `stream = 'call-${call.id}'`);
  r = await asB().post(`${url}/transfer`, { to_number: newPhone(), mode: 'cold' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'invalid_transition');
  assert.equal((await asB().post(`${url}/hangup`)).status, 409);
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n, 'nothing stored');
  assert.equal(updates(call.sid).length, 6, 'nothing more sent to Twilio');
});

test('Twilio failing: a live-call update is retried until it goes through; a dial is made once across a crash', async () => {
  const call = await liveCall();
  const path = `/2010-04-01/Accounts/${W.acct.sid}/Calls/${call.sid}.json`;
  env.fake.fault({ method: 'POST', path, status: 500, times: 2 });
  const r = await api().post(`${callsPath()}/${call.id}/park`, {});
  assert.equal(r.status, 200, r.text);
  const ok = await eventually(() => updates(call.sid).find((q) => !q.fault), { timeoutMs: 15000 });
  assert.equal(updates(call.sid).filter((q) => q.fault).length, 2, 'two failures, then the retry');
  assert.equal(only(only(parseTwiml(form(ok).Twiml), 'Dial'), 'Conference').textContent, `park-${call.id}`);

  // Twilio takes the call and the answer never comes; the server dies.  After the restart the
  // call is not dialled again: its attempt is in the log.
  const phone = newPhone();
  env.fake.fault({ method: 'POST', path: CALLS(), action: 'hang', apply: true });
  const c = await api().post(callsPath(), { to: phone });
  assert.equal(c.status, 201, c.text);
  await eventually(() => creates(phone)[0]);
  await env.srv.kill();
  await env.restart();
  // Something after it in the log is acted on: call control has gone past the dial.
  const probe = await liveCall();
  assert.ok(probe.sid);
  assert.equal(creates(phone).length, 1, 'dialled once');

  // A park whose redirect was on its way when the server died is sent again after the restart
  // (redirects are idempotent; the checkpoint had not passed it).
  const p2 = `/2010-04-01/Accounts/${W.acct.sid}/Calls/${probe.sid}.json`;
  env.fake.fault({ method: 'POST', path: p2, action: 'hang' });
  assert.equal((await api().post(`${callsPath()}/${probe.id}/park`, {})).status, 200);
  await eventually(() => updates(probe.sid)[0]);
  await env.srv.kill();
  await env.restart();
  const again = await eventually(() => updates(probe.sid)[1], { timeoutMs: 15000 });
  assert.equal(only(only(parseTwiml(form(again).Twiml), 'Dial'), 'Conference').textContent, `park-${probe.id}`);
});

test('a cold transfer nobody answers: back to the first agent, then the queue, with no agent', async () => {
  const call = await liveCall();
  let r = await api().post(`${callsPath()}/${call.id}/transfer`, { to_agent: agentB.id, mode: 'cold' });
  assert.equal(r.status, 200, r.text);
  const u = await eventually(() => updates(call.sid)[0]);
  let dial = only(parseTwiml(form(u).Twiml), 'Dial');
  let a = await fetchTwiml(dial.getAttribute('action'), { CallSid: call.sid, DialCallStatus: 'no-answer' });
  dial = only(parseTwiml(a.text), 'Dial');
  assert.equal(only(dial, 'Client').textContent, identity(W.owner.user.id), 'back to the owner');
  a = await fetchTwiml(dial.getAttribute('action'), { CallSid: call.sid, DialCallStatus: 'busy' });
  assert.equal(a.status, 200, a.text);
  const enq = only(parseTwiml(a.text), 'Enqueue');
  assert.equal(enq.textContent, `ws_${hex(W.ws.id)}`, 'the workspace queue');
  assert.equal(enq.getAttribute('waitUrl'), `${PUBLIC_URL}/webhooks/twilio/voice/hold?w=${W.ws.id}`);
  const b = await onBoard(call.id, (x) => x.status === 'queued');
  assert.equal(b.agent_id, null);
  // The queue's hold URL is served (by the inbound side) and signed like the rest.
  const hold = await fetchTwiml(enq.getAttribute('waitUrl'), { CallSid: call.sid, QueueSid: 'QU' + '0'.repeat(32) });
  assert.equal(hold.status, 200, hold.text);
  parseTwiml(hold.text);
  // A transfer from the queue is refused: nobody has the call.
  r = await api().post(`${callsPath()}/${call.id}/transfer`, { to_agent: agentB.id, mode: 'cold' });
  assert.equal(r.status, 409, r.text);
});

test('two agents unpark one call at once: one gets it, and only their browser is rung', async () => {
  const call = await liveCall();
  const url = `${callsPath()}/${call.id}`;
  assert.equal((await api().post(`${url}/park`, {})).status, 200);
  const legsBefore = (id) => creates(`client:${identity(id)}`).filter((q) => (form(q).Twiml || '').includes(`park-${call.id}`)).length;
  const [a, b] = await Promise.all([api().post(`${url}/unpark`, {}), asB().post(`${url}/unpark`, {})]);
  assert.deepEqual([a.status, b.status].sort(), [200, 409], `${a.text} ${b.text}`);
  const winner = a.status === 200 ? W.owner.user.id : agentB.id;
  const loser = winner === agentB.id ? W.owner.user.id : agentB.id;
  // Call control handles a call's events in order: once the hang-up after them is sent, every
  // leg the unparking asked for has been created.
  assert.equal((await api().post(`${url}/hangup`)).status, 200);
  await eventually(() => updates(call.sid).find((q) => form(q).Status === 'completed'));
  assert.equal(legsBefore(winner), 1, 'the winner is rung once');
  assert.equal(legsBefore(loser), 0, 'the other is not rung');
  assert.equal((await api().get(url)).json.agent_id, winner);
});

test('a call that never connected: transfer, park and hang-up are 409, nothing stored', async () => {
  const phone = newPhone();
  env.fake.fault({ method: 'POST', path: CALLS(), status: 400, body: { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 } });
  const r = await api().post(callsPath(), { to: phone });
  assert.equal(r.status, 201, r.text);
  await eventually(async () => (await api().get(`${callsPath()}/${r.json.id}`)).json.status === 'failed');
  const n = countEvents(env.db, `stream = 'call-${r.json.id}'`);
  for (const [op, body] of [['transfer', { to_agent: agentB.id, mode: 'cold' }], ['park', {}], ['hangup', undefined], ['unpark', {}]]) {
    const x = await api().post(`${callsPath()}/${r.json.id}/${op}`, body);
    assert.equal(x.status, 409, `${op}: ${x.text}`);
    assert.equal(x.json.error.code, 'invalid_transition');
  }
  assert.equal(countEvents(env.db, `stream = 'call-${r.json.id}'`), n);
  assert.ok((await board('failed')).some((c) => c.id === r.json.id));
  assert.ok(!(await board()).some((c) => c.id === r.json.id), 'not on the live board');
});

test("another workspace's call is 404", async () => {
  const call = await liveCall();
  const other = await workspace(env.srv.url, 'Other');
  const them = other.owner.client;
  assert.equal((await them.get(`${callsPath(other.ws.id)}/${call.id}`)).status, 404);
  const n = countEvents(env.db, `stream = 'call-${call.id}'`);
  for (const op of ['park', 'unpark', 'hangup']) assert.equal((await them.post(`${callsPath(other.ws.id)}/${call.id}/${op}`, {})).status, 404, op);
  assert.equal((await them.post(`${callsPath(other.ws.id)}/${call.id}/transfer`, { to_number: newPhone(), mode: 'cold' })).status, 404);
  assert.equal((await them.get(`${callsPath(W.ws.id)}/${call.id}`)).status, 404, 'not a member');
  assert.equal(countEvents(env.db, `stream = 'call-${call.id}'`), n);
  assert.ok(!(await them.get(`${callsPath(other.ws.id)}?status=live`)).json.items.some((c) => c.id === call.id));
});

test('a call parked past the limit rings the agent who parked it, across a restart', async () => {
  let r = await api().put(`${callsPath()}/settings`, { parking_limit_seconds: 10 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.parking_limit_seconds, 10);
  assert.equal((await asB().put(`${callsPath()}/settings`, { parking_limit_seconds: 20 })).status, 403, 'admins only');
  const call = await liveCall();
  r = await asB().post(`${callsPath()}/${call.id}/park`, {});
  assert.equal(r.status, 200, r.text);
  const parkedAt = Date.parse(r.json.parked_at);
  await onBoard(call.id, (x) => x.status === 'parked');

  // The timer survives a restart: it is rebuilt from the read model and the log.
  assert.equal(await env.srv.stop(), 0);
  await env.restart();
  const ring = await eventually(() => creates(`client:${identity(agentB.id)}`).find((q) => (form(q).Url || '').includes(call.id)), { timeoutMs: 30000 });
  assert.ok(Date.now() - parkedAt >= 10000, 'not before the limit');
  const f = form(ring);
  assert.equal(f.Url, `${PUBLIC_URL}/webhooks/twilio/voice/calls/reclaim?w=${W.ws.id}&c=${call.id}&a=${agentB.id}`);
  assert.equal(f.Twiml, undefined);

  // The parker answers: they are connected to that call, which leaves the lot.
  const a = await fetchTwiml(f.Url, { CallSid: newSid('CA'), CallStatus: 'in-progress', To: `client:${identity(agentB.id)}` });
  assert.equal(a.status, 200, a.text);
  const conf = only(only(parseTwiml(a.text), 'Dial'), 'Conference');
  assert.equal(conf.textContent, `park-${call.id}`);
  assert.equal(conf.getAttribute('startConferenceOnEnter'), 'true');
  await onBoard(call.id, (x) => x.status === 'in-progress' && x.agent_id === agentB.id);
  // Answering the ring again finds the call gone from the lot.
  const again = await fetchTwiml(f.Url, { CallSid: newSid('CA'), CallStatus: 'in-progress' });
  assert.equal(again.status, 200);
  assert.ok(children(parseTwiml(again.text)).some((e) => e.nodeName === 'Hangup'));
});

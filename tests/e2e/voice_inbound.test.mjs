// Inbound voice (SPEC §5, §7; docs/voice.md), driven as Twilio drives it: webhooks signed with
// twilio's own helper, TwiML answers read with a real XML parser and checked verb by verb for every
// routing case (the number's agent online, away, no owner, no answer -> the queue, a browser's call
// out, a number of nobody's, bad signatures), status and recording callbacks duplicated and out of
// order, presence changing the routing, the contact's call timeline, the agents board and analytics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  countEvents,
  eventually,
  exportEvents,
  newSid,
  postTwilio,
  PUBLIC_URL,
  startAll,
  stopAll,
  twilioWorkspace,
} from './messaging_support.mjs';
import { signup } from './api_support.mjs';
import { parseTwiml } from './twiml_support.mjs';

const DB = 'e2e_voice_inbound';
const VOICE = '/webhooks/twilio/voice';
let env, W, agent, numAgent, numQueue, numOwner;

const hex = (uuid) => uuid.replaceAll('-', '');
const identityOf = (userId) => `w${hex(W.ws.id)}_u${hex(userId)}`;
const callSid = () => newSid('CA');
let phoneSeq = 0;
const newPhone = () => `+1415666${String(1000 + ++phoneSeq).padStart(4, '0')}`;
const inWs = (where = 'true') => countEvents(env.db, `workspace_id = '${W.ws.id}' AND ${where}`);
const callEvents = (sid, types) =>
  exportEvents(env.db, { workspace: W.ws.id, types }).filter((e) => e.stream === callStreamOf(sid));
const streamBySid = new Map();
const callStreamOf = (sid) => streamBySid.get(sid);

// The parameters Twilio posts for an incoming call to one of our numbers.
function callParams({ from, to, sid = callSid(), status = 'ringing', extra = {} }) {
  return {
    AccountSid: W.acct.sid,
    ApiVersion: '2010-04-01',
    CallSid: sid,
    CallStatus: status,
    Called: to,
    Caller: from,
    Direction: 'inbound',
    From: from,
    FromCountry: 'US',
    To: to,
    ToCountry: 'US',
    ...extra,
  };
}

const post = (path, params, opts = {}) => postTwilio(env.srv, path, params, { token: W.acct.token, ...opts });

// Posts to a URL our TwiML gave Twilio (the query is part of what is signed).
function postTo(url, params, opts = {}) {
  assert.ok(url.startsWith(PUBLIC_URL), url);
  const u = new URL(url);
  return post(u.pathname, params, { query: u.search, ...opts });
}

async function call(params) {
  const r = await post(VOICE, params);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/xml/);
  const doc = parseTwiml(r.text);
  const started = exportEvents(env.db, { workspace: W.ws.id, types: ['CallInitiated'] }).find(
    (e) => e.data.call_sid === params.CallSid,
  );
  if (started) streamBySid.set(params.CallSid, started.stream);
  return { doc, started, text: r.text };
}

const presence = async (who, p) => {
  const r = await who.client.put('/v1/me/presence', { presence: p });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.presence, p);
};

before(async () => {
  env = await startAll(DB);
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 3 });
  agent = await signup(env.srv.url, { name: 'Ada Agent' });
  const m = await W.owner.client.post(`/v1/workspaces/${W.ws.id}/members`, { email: agent.email, role: 'agent' });
  assert.equal(m.status, 201, m.text);
  [numAgent, numQueue, numOwner] = W.acct.numbers.map((n) => n.phone_number);
  // Numbers belong to agents through the API (admin only).
  const base = `/v1/workspaces/${W.ws.id}/voice/numbers/`;
  const denied = await agent.client.put(base + encodeURIComponent(numAgent), { assigned_to: agent.user.id });
  assert.equal(denied.status, 403);
  let r = await W.owner.client.put(base + encodeURIComponent(numAgent), { assigned_to: agent.user.id });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual({ number: r.json.number, assigned_to: r.json.assigned_to }, { number: numAgent, assigned_to: agent.user.id });
  r = await W.owner.client.put(base + numOwner, { assigned_to: W.owner.user.id });
  assert.equal(r.status, 200, r.text);
  assert.equal((await W.owner.client.put(base + '+15550000000', { assigned_to: null })).status, 404);
  assert.equal((await W.owner.client.put(base + numQueue, { assigned_to: 'nobody' })).status, 400);
  const list = await agent.client.get(`/v1/workspaces/${W.ws.id}/voice/numbers`);
  assert.equal(list.status, 200);
  assert.equal(list.json.items.find((n) => n.number === numAgent).assigned_to, agent.user.id);
  assert.equal(list.json.items.find((n) => n.number === numQueue).assigned_to, null);
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

function checkRingAgent(doc, userId, started) {
  assert.equal(doc.children.length, 1);
  const dial = doc.children[0];
  assert.equal(dial.tag, 'Dial');
  assert.equal(dial.attrs.timeout, '20');
  assert.equal(dial.attrs.method, 'POST');
  const q = `?w=${W.ws.id}&call=${started.stream.slice(5)}`;
  assert.equal(dial.attrs.action, `${PUBLIC_URL}${VOICE}/dial${q}&a=${userId}`);
  assert.equal(dial.attrs.record, 'record-from-answer-dual');
  assert.equal(dial.attrs.recordingStatusCallback, `${PUBLIC_URL}${VOICE}/recording${q}`);
  assert.equal(dial.children.length, 1);
  const client = dial.children[0];
  assert.equal(client.tag, 'Client');
  assert.equal(client.text, identityOf(userId));
  assert.match(client.text, /^[A-Za-z0-9_]+$/);
  assert.equal(client.attrs.statusCallback, `${PUBLIC_URL}${VOICE}/status${q}&a=${userId}`);
  assert.equal(client.attrs.statusCallbackEvent, 'ringing answered');
  return dial;
}

function checkEnqueue(doc) {
  assert.equal(doc.children.length, 1);
  const enq = doc.children[0];
  assert.equal(enq.tag, 'Enqueue');
  assert.equal(enq.text, `ws_${hex(W.ws.id)}`);
  assert.equal(enq.attrs.waitUrl, `${PUBLIC_URL}${VOICE}/hold?w=${W.ws.id}`);
  return enq;
}

test('the number\'s agent online: their browser rings; a retry answers the same and stores nothing', async () => {
  await presence(agent, 'online');
  const from = newPhone();
  const p = callParams({ from, to: numAgent });
  const { doc, started, text } = await call(p);
  assert.ok(started, 'CallInitiated recorded before the answer');
  checkRingAgent(doc, agent.user.id, started);
  assert.equal(started.data.direction, 'inbound');
  assert.equal(started.data.from, from);
  assert.equal(started.data.to, numAgent);
  assert.equal(started.data.agent_id, agent.user.id);
  assert.equal(started.metadata.source, 'webhook:twilio');
  // The caller became a contact, and the call is filed under it.
  const created = exportEvents(env.db, { workspace: W.ws.id, types: ['ContactCreated'] }).filter((e) =>
    e.data.phones.includes(from),
  );
  assert.equal(created.length, 1);
  assert.equal(started.data.contact_id, created[0].stream.slice(8));

  const n = inWs();
  for (let i = 0; i < 2; i++) {
    const again = await post(VOICE, p);
    assert.equal(again.status, 200);
    assert.equal(again.text, text);
  }
  assert.equal(inWs(), n, 'retries store nothing');
});

test('away or offline agent, or a number nobody owns: the caller waits in the queue, with hold music', async () => {
  await presence(agent, 'away');
  const a = await call(callParams({ from: newPhone(), to: numAgent }));
  const enq = checkEnqueue(a.doc);
  assert.equal(a.started.data.agent_id ?? null, null);

  await presence(agent, 'offline');
  checkEnqueue((await call(callParams({ from: newPhone(), to: numAgent }))).doc);

  await presence(W.owner, 'online'); // presence of someone else does not matter
  const q = await call(callParams({ from: newPhone(), to: numQueue }));
  checkEnqueue(q.doc);
  assert.ok(q.started);

  // The waitUrl: a message, then music on a loop.
  const hold = await postTo(enq.attrs.waitUrl, callParams({ from: newPhone(), to: numAgent, extra: { QueueSid: 'QU' + 'a'.repeat(32) } }));
  assert.equal(hold.status, 200, hold.text);
  const h = parseTwiml(hold.text);
  assert.deepEqual(h.children.map((v) => v.tag), ['Say', 'Play']);
  assert.match(h.children[1].text, /^https:\/\/.+\.mp3$/);
  assert.equal(h.children[1].attrs.loop, '0');
  // ... signed like every other request.
  const forged = await postTo(enq.attrs.waitUrl, callParams({ from: newPhone(), to: numAgent }), { sign: 'AAAA' });
  assert.equal(forged.status, 403);
});

test('presence changes routing back: online again rings the browser', async () => {
  await presence(agent, 'online');
  const { doc, started } = await call(callParams({ from: newPhone(), to: numAgent }));
  checkRingAgent(doc, agent.user.id, started);
  await presence(W.owner, 'online');
  const o = await call(callParams({ from: newPhone(), to: numOwner }));
  checkRingAgent(o.doc, W.owner.user.id, o.started);
});

test('nobody answers: the dial action puts the caller in the queue (CallEnqueued)', async () => {
  await presence(agent, 'online');
  const p = callParams({ from: newPhone(), to: numAgent });
  const { doc, started } = await call(p);
  const dial = checkRingAgent(doc, agent.user.id, started);
  const leg = callSid();
  const ringing = { ...callParams({ from: p.From, to: `client:${identityOf(agent.user.id)}`, sid: leg }), ParentCallSid: p.CallSid, Direction: 'outbound-dial' };
  const client = dial.children[0];
  assert.equal((await postTo(client.attrs.statusCallback, ringing)).status, 200);
  const action = { ...p, CallStatus: 'in-progress', DialCallStatus: 'no-answer', DialCallSid: leg };
  for (let i = 0; i < 2; i++) {
    const r = await postTo(dial.attrs.action, action);
    assert.equal(r.status, 200, r.text);
    checkEnqueue(parseTwiml(r.text));
  }
  const evs = callEvents(p.CallSid, ['CallRinging', 'CallEnqueued']);
  assert.deepEqual(evs.map((e) => e.type), ['CallRinging', 'CallEnqueued']);
  assert.equal(evs[1].data.reason, 'no-answer');
  assert.equal(evs[1].data.from_agent, agent.user.id);
  // The caller hangs up while waiting: a missed call.
  assert.equal((await post(`${VOICE}/status`, { ...p, CallStatus: 'completed', CallDuration: '31' })).status, 200);
  const done = callEvents(p.CallSid, ['CallCompleted']);
  assert.equal(done.length, 1);
  assert.equal(done[0].data.duration_seconds, 0);
  assert.equal(done[0].data.answered_at ?? null, null);
});

test('an agent takes the next caller from the queue: the caller\'s call is answered by them', async () => {
  await presence(agent, 'away');
  const p = callParams({ from: newPhone(), to: numQueue });
  const waiting = await call(p);
  checkEnqueue(waiting.doc);
  await presence(agent, 'online');
  // The agent's browser dials "queue".
  const me = `client:${identityOf(agent.user.id)}`;
  const leg = { AccountSid: W.acct.sid, ApiVersion: '2010-04-01', CallSid: callSid(), CallStatus: 'ringing', Direction: 'inbound', From: me, Caller: me, To: 'queue' };
  const n = inWs();
  const r = await post(VOICE, leg);
  assert.equal(r.status, 200, r.text);
  const doc = parseTwiml(r.text);
  assert.deepEqual(doc.children.map((v) => v.tag), ['Dial']);
  const q = doc.children[0].children[0];
  assert.equal(q.tag, 'Queue');
  assert.equal(q.text, `ws_${hex(W.ws.id)}`);
  assert.equal(q.attrs.url, `${PUBLIC_URL}${VOICE}/dequeued?w=${W.ws.id}&a=${agent.user.id}`);
  assert.equal(inWs(), n, 'the agent\'s own leg records nothing');
  // Twilio asks the url for the waiting caller's call, just before connecting them (twice: a retry).
  const dq = { ...p, CallStatus: 'in-progress', QueueSid: 'QU' + 'd'.repeat(32), QueueTime: '12', DequeingCallSid: leg.CallSid };
  for (let i = 0; i < 2; i++) {
    const a = await postTo(q.attrs.url, dq);
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(parseTwiml(a.text).children, []);
  }
  const evs = callEvents(p.CallSid, ['CallAnswered']);
  assert.equal(evs.length, 1);
  assert.equal(evs[0].data.agent_id, agent.user.id);
  // A forged dequeue (another signature) answers nothing.
  assert.equal((await postTo(q.attrs.url, { ...dq, CallSid: callSid() }, { sign: 'AAAA' })).status, 403);
  assert.equal((await post(`${VOICE}/status`, { ...p, CallStatus: 'completed' })).status, 200);
  const done = callEvents(p.CallSid, ['CallCompleted']);
  assert.equal(done[0].data.answered_at, evs[0].data.answered_at);
});

test('answered: status and recording callbacks, duplicated and out of order, record each fact once', async () => {
  await presence(agent, 'online');
  const p = callParams({ from: newPhone(), to: numAgent });
  const { doc, started } = await call(p);
  const dial = checkRingAgent(doc, agent.user.id, started);
  const client = dial.children[0];
  const leg = callSid();
  const legParams = (status) => ({
    ...callParams({ from: p.From, to: `client:${identityOf(agent.user.id)}`, sid: leg, status }),
    ParentCallSid: p.CallSid,
    Direction: 'outbound-dial',
  });
  // answered arrives before ringing; each twice.
  for (const s of ['in-progress', 'in-progress', 'ringing', 'ringing']) {
    const r = await postTo(client.attrs.statusCallback, legParams(s));
    assert.equal(r.status, 200, r.text);
  }
  let evs = callEvents(p.CallSid, ['CallRinging', 'CallAnswered']);
  assert.deepEqual(evs.map((e) => e.type), ['CallAnswered'], 'a late ringing does not move an answered call back');
  assert.equal(evs[0].data.agent_id, agent.user.id);

  // The recording is ready before the call's end is reported; sent twice.
  const rec = {
    AccountSid: W.acct.sid,
    CallSid: p.CallSid,
    RecordingSid: 'RE' + 'b'.repeat(32),
    RecordingUrl: `https://api.twilio.com/2010-04-01/Accounts/${W.acct.sid}/Recordings/RE${'b'.repeat(32)}`,
    RecordingStatus: 'completed',
    RecordingDuration: '42',
    RecordingChannels: '2',
    RecordingSource: 'DialVerb',
  };
  for (let i = 0; i < 2; i++) assert.equal((await postTo(dial.attrs.recordingStatusCallback, rec)).status, 200);
  // An in-progress recording callback records nothing.
  assert.equal((await postTo(dial.attrs.recordingStatusCallback, { ...rec, RecordingStatus: 'in-progress', RecordingSid: 'RE' + 'c'.repeat(32), RecordingUrl: rec.RecordingUrl + 'x' })).status, 200);

  // The dial ends (answered) -> hang up; the call's completed callback, twice, then a stale ringing.
  const action = await postTo(dial.attrs.action, { ...p, CallStatus: 'in-progress', DialCallStatus: 'completed', DialCallSid: leg, DialCallDuration: '42' });
  assert.equal(action.status, 200);
  assert.deepEqual(parseTwiml(action.text).children.map((v) => v.tag), ['Hangup']);
  for (const s of ['completed', 'completed', 'ringing', 'busy']) {
    const r = await post(`${VOICE}/status`, { ...p, CallStatus: s, CallDuration: '45' });
    assert.equal(r.status, 200, r.text);
  }
  evs = callEvents(p.CallSid, ['CallRinging', 'CallAnswered', 'CallRecordingAvailable', 'CallCompleted', 'CallFailed']);
  assert.deepEqual(evs.map((e) => e.type), ['CallAnswered', 'CallRecordingAvailable', 'CallCompleted']);
  assert.equal(evs[1].data.url, rec.RecordingUrl);
  assert.equal(evs[1].data.duration_seconds, 42);
  assert.equal(evs[1].data.recording_sid, rec.RecordingSid);
  assert.equal(evs[2].data.answered_at, evs[0].data.answered_at);
  assert.equal(typeof evs[2].data.duration_seconds, 'number');

  // The contact's timeline shows the call, as the API's call object.
  const contactId = started.data.contact_id;
  const timeline = await eventually(async () => {
    const r = await agent.client.get(`/v1/workspaces/${W.ws.id}/contacts/${contactId}/calls`);
    return r.status === 200 && r.json.items[0]?.status === 'completed' && r.json.items[0].recordings.length === 1 ? r : null;
  });
  const c = timeline.json.items[0];
  assert.equal(c.id, started.stream.slice(5));
  assert.equal(c.contact_id, contactId);
  assert.equal(c.direction, 'inbound');
  assert.equal(c.from, p.From);
  assert.equal(c.to, numAgent);
  assert.equal(c.agent_id, agent.user.id);
  assert.match(c.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.match(c.answered_at, /Z$/);
  assert.match(c.ended_at, /Z$/);
  assert.equal(c.recordings[0].duration_seconds, 42);
  assert.equal(timeline.json.next_cursor, null);
  assert.equal((await agent.client.get(`/v1/workspaces/${W.ws.id}/contacts/00000000-0000-7000-8000-000000000000/calls`)).status, 404);
});

test('a browser\'s call to a number dials out with the agent\'s number as caller id', async () => {
  const me = `client:${identityOf(agent.user.id)}`;
  const sid = callSid();
  const params = {
    AccountSid: W.acct.sid,
    ApiVersion: '2010-04-01',
    ApplicationSid: env.fake.snapshot().accounts[W.acct.sid].apps[0].sid,
    CallSid: sid,
    CallStatus: 'ringing',
    Direction: 'inbound',
    From: me,
    Caller: me,
    To: '(415) 777-1234', // typed by hand: read in the workspace's country
  };
  const { doc, started } = await call(params);
  assert.ok(started);
  assert.equal(started.data.direction, 'outbound');
  assert.equal(started.data.from, numAgent);
  assert.equal(started.data.to, '+14157771234');
  assert.equal(started.data.agent_id, agent.user.id);
  assert.equal(started.metadata.user_id ?? started.data.by, agent.user.id);
  assert.equal(doc.children.length, 1);
  const dial = doc.children[0];
  assert.equal(dial.tag, 'Dial');
  assert.equal(dial.attrs.callerId, numAgent);
  assert.match(dial.attrs.action, /\/voice\/dial\?w=.*&k=out$/);
  assert.equal(dial.children[0].tag, 'Number');
  assert.equal(dial.children[0].text, '+14157771234');
  // The callee is busy: the call fails busy, and the browser's leg hangs up.
  const r = await postTo(dial.attrs.action, { ...params, CallStatus: 'in-progress', DialCallStatus: 'busy' });
  assert.deepEqual(parseTwiml(r.text).children.map((v) => v.tag), ['Hangup']);
  const failed = callEvents(sid, ['CallFailed']);
  assert.equal(failed.length, 1);
  assert.equal(failed[0].data.reason, 'busy');

  // Something that is not a number: a spoken apology, nothing stored.
  const n = inWs();
  const bad = await post(VOICE, { ...params, CallSid: callSid(), To: 'pizza' });
  assert.equal(bad.status, 200);
  assert.deepEqual(parseTwiml(bad.text).children.map((v) => v.tag), ['Say', 'Hangup']);
  assert.equal(inWs(), n);
  // Each agent calls from their own number.
  const o = await call({ ...params, CallSid: callSid(), From: `client:${identityOf(W.owner.user.id)}`, To: '+14157770000' });
  assert.equal(o.doc.children[0].attrs.callerId, numOwner);
  assert.equal(o.started.data.agent_id, W.owner.user.id);
});

test('at once: Twilio\'s concurrent retries store one call; calls from one new number make one contact', async () => {
  await presence(agent, 'online');
  const p = callParams({ from: newPhone(), to: numAgent });
  const answers = await Promise.all(Array.from({ length: 12 }, () => post(VOICE, p)));
  for (const a of answers) assert.equal(a.status, 200, a.text);
  assert.equal(new Set(answers.map((a) => a.text)).size, 1, 'every retry is answered alike');
  const started = exportEvents(env.db, { workspace: W.ws.id, types: ['CallInitiated'] }).filter((e) => e.data.call_sid === p.CallSid);
  assert.equal(started.length, 1);

  const from = newPhone();
  const many = Array.from({ length: 8 }, (_, i) => callParams({ from, to: [numAgent, numQueue][i % 2] }));
  const rs = await Promise.all(many.map((x) => post(VOICE, x)));
  for (const r of rs) assert.equal(r.status, 200, r.text);
  const evs = exportEvents(env.db, { workspace: W.ws.id, types: ['ContactCreated', 'CallInitiated'] });
  const contacts = evs.filter((e) => e.type === 'ContactCreated' && e.data.phones.includes(from));
  assert.equal(contacts.length, 1);
  const calls = evs.filter((e) => e.type === 'CallInitiated' && e.data.from === from);
  assert.equal(calls.length, 8);
  for (const c of calls) assert.equal(c.data.contact_id, contacts[0].stream.slice(8));
});

test('bad, missing or foreign signatures, and numbers of nobody: 403 and nothing stored', async () => {
  const n = countEvents(env.db, 'true');
  const p = callParams({ from: newPhone(), to: numAgent });
  assert.equal((await post(VOICE, p, { sign: false })).status, 403);
  assert.equal((await post(VOICE, p, { sign: 'bm9wZQ==' })).status, 403);
  assert.equal((await post(VOICE, p, { token: 'f'.repeat(32) })).status, 403);
  assert.equal((await post(VOICE, { ...p, AccountSid: 'AC' + 'e'.repeat(32) })).status, 403);
  assert.equal((await post(VOICE, { ...p, To: '+15550009999' })).status, 403, 'a number no workspace has');
  assert.equal((await post(`${VOICE}/status`, { ...p, CallStatus: 'completed' }, { sign: 'bm9wZQ==' })).status, 403);
  // A browser identity that is not ours, or names another workspace.
  assert.equal((await post(VOICE, { ...p, From: 'client:mallory' })).status, 403);
  assert.equal((await post(VOICE, { ...p, From: `client:w${'0'.repeat(32)}_u${hex(agent.user.id)}` })).status, 403);
  // Malformed: 400.
  assert.equal((await post(VOICE, { ...p, CallSid: 'CA123' })).status, 400);
  assert.equal((await post(VOICE, { ...p, CallStatus: 'dancing' })).status, 400);
  assert.equal(countEvents(env.db, 'true'), n);
});

test('the agents board shows presence, identity, numbers and live calls; analytics count calls per agent', async () => {
  await presence(agent, 'away');
  const board = await eventually(async () => {
    const r = await W.owner.client.get(`/v1/workspaces/${W.ws.id}/voice/agents`);
    return r.status === 200 && r.json.items.find((a) => a.user_id === agent.user.id)?.presence === 'away' ? r : null;
  });
  const a = board.json.items.find((x) => x.user_id === agent.user.id);
  assert.equal(a.identity, identityOf(agent.user.id));
  assert.deepEqual(a.numbers, [numAgent]);
  assert.equal(a.role, 'agent');
  assert.equal(a.name, 'Ada Agent');
  // A call rung to the agent earlier and never ended is still live on the board.
  assert.ok(a.active_call === null || ['queued', 'ringing', 'in-progress', 'parked'].includes(a.active_call.status));

  const report = await eventually(async () => {
    const r = await W.owner.client.get(`/v1/workspaces/${W.ws.id}/analytics`);
    const mine = r.json?.calls?.by_agent?.find((x) => x.agent_id === agent.user.id);
    return r.status === 200 && mine && mine.answered >= 1 && mine.missed >= 1 ? r : null;
  });
  const calls = report.json.calls;
  assert.ok(calls.total >= 8);
  assert.ok(calls.answered >= 1);
  assert.ok(calls.missed >= 2);
  const mine = calls.by_agent.find((x) => x.agent_id === agent.user.id);
  assert.equal(typeof mine.average_duration_seconds, 'number');
  assert.ok(mine.total >= mine.answered + mine.missed);

  const bad = await agent.client.put('/v1/me/presence', { presence: 'sleeping' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.field, 'presence');
  assert.equal((await agent.client.put('/v1/me/presence', { presence: 'online', extra: 1 })).status, 400);
  assert.equal((await new (agent.client.constructor)(env.srv.url).put('/v1/me/presence', { presence: 'online' })).status, 401);
});

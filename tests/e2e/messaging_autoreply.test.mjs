// Auto-replies end to end: an inbound message containing a rule's keyword (whole word, any case)
// gets the reply from the number it was sent to, at most once per contact per rule per day; STOP'd
// contacts get nothing; a word that merely contains the keyword gets nothing.
//
// The reactor handles inbound messages one at a time in log order, so once a later message's reply
// has gone out, every earlier message has been handled: absence is checked that way, not by
// sleeping.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, eventually, inboundParams, postTwilio, startAll, stopAll, twilioWorkspace } from './messaging_support.mjs';

const DB = 'e2e_messaging_autoreply';
let env, W;
let seq = 0;
const newPhone = () => `+1415557${String(1000 + ++seq).padStart(4, '0')}`;

before(async () => {
  env = await startAll(DB);
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 2 });
  const api = new Client(env.srv.url, W.owner.token);
  for (const [k, reply] of [['hours', 'We are open 8am to 6pm.'], ['price', 'Call-outs start at $50.'], ['ping', 'pong']])
    assert.equal((await api.put(`/v1/workspaces/${W.ws.id}/auto-replies/${k}`, { reply })).status, 201);
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const MSGS = () => `/2010-04-01/Accounts/${W.acct.sid}/Messages.json`;
const repliesTo = (phone) =>
  env.fake.requests({ path: MSGS(), method: 'POST' }).map((q) => Object.fromEntries(q.form)).filter((f) => f.To === phone);
const inbound = async (from, body, to = W.acct.numbers[0].phone_number) => {
  const r = await postTwilio(env.srv, '/webhooks/twilio/messaging', inboundParams(W.acct, { from, body, to }), { token: W.acct.token });
  assert.equal(r.status, 200);
};
// Everything sent before now has been handled once a fresh contact's "ping" is answered.
async function drain() {
  const p = newPhone();
  await inbound(p, 'ping');
  await eventually(() => repliesTo(p).length === 1, { timeoutMs: 20000 });
}

test('a keyword gets its reply, from the number written to, once a day', async () => {
  const a = newPhone();
  const to = W.acct.numbers.map((n) => n.phone_number).sort()[1];
  await inbound(a, 'Hi! What are your HOURS on Saturday?', to);
  await eventually(() => repliesTo(a).length === 1, { timeoutMs: 20000 });
  const [r] = repliesTo(a);
  assert.equal(r.Body, 'We are open 8am to 6pm.');
  assert.equal(r.From, to, 'from the number the contact wrote to');
  // Again the same day: nothing more for hours; a second rule still answers.
  await inbound(a, 'hours again?');
  await inbound(a, 'and the price?');
  await eventually(() => repliesTo(a).length === 2, { timeoutMs: 20000 });
  await drain();
  assert.deepEqual(repliesTo(a).map((f) => f.Body), ['We are open 8am to 6pm.', 'Call-outs start at $50.']);
});

test('two keywords in one message: both replies; parts of words: none', async () => {
  const b = newPhone();
  await inbound(b, 'price & hours?');
  await eventually(() => repliesTo(b).length === 2, { timeoutMs: 20000 });
  const c = newPhone();
  await inbound(c, 'happyhours pricey');
  await drain();
  assert.equal(repliesTo(c).length, 0);
});

test('a contact who texted STOP gets no auto-reply', async () => {
  const d = newPhone();
  await inbound(d, 'STOP');
  await inbound(d, 'hours?');
  await drain();
  assert.equal(repliesTo(d).length, 0);
});

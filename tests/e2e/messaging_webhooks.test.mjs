// Twilio's inbound messaging webhook (SPEC §7), signed with twilio's own helper: routing by the To
// number, signatures (every parameter, repeated ones, the query, the URL with or without its port),
// 403 and nothing stored when they are wrong, idempotency on MessageSid, SMS / MMS / WhatsApp, 400
// for malformed bodies, and 50 concurrent first messages from one unknown number -> one contact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  countEvents,
  exportEvents,
  inboundParams,
  newSid,
  postTwilio,
  PUBLIC_URL,
  startAll,
  stopAll,
  twilioWorkspace,
} from './messaging_support.mjs';
import webhooks from 'twilio/lib/webhooks/webhooks.js';

const { getExpectedTwilioSignature } = webhooks;
const DB = 'e2e_messaging_webhooks';
const PATH = '/webhooks/twilio/messaging';
let env, W;

before(async () => {
  env = await startAll(DB);
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 2 });
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const inWs = (where = 'true') => countEvents(env.db, `workspace_id = '${W.ws.id}' AND ${where}`);
let phoneSeq = 0;
const newPhone = () => `+1415555${String(1000 + ++phoneSeq).padStart(4, '0')}`;

test('an inbound SMS: 200 empty TwiML after commit, a new contact, the message recorded once', async () => {
  const from = newPhone();
  const p = inboundParams(W.acct, { from, body: 'Do you fix leaking taps?' });
  const r = await postTwilio(env.srv, PATH, p, { token: W.acct.token });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^text\/xml/);
  assert.equal(r.text, '<?xml version="1.0" encoding="UTF-8"?><Response/>');
  // Acknowledged after commit: the events are there when the answer is.
  const got = exportEvents(env.db, { workspace: W.ws.id, types: ['ContactCreated', 'MessageReceived'] });
  const created = got.filter((e) => e.type === 'ContactCreated' && e.data.phones.includes(from));
  assert.equal(created.length, 1);
  const msgs = got.filter((e) => e.type === 'MessageReceived' && e.data.provider_id === p.MessageSid);
  assert.equal(msgs.length, 1);
  const m = msgs[0];
  assert.equal(m.stream, created[0].stream);
  assert.equal(m.data.channel, 'sms');
  assert.equal(m.data.direction, 'inbound');
  assert.equal(m.data.from, from);
  assert.equal(m.data.to, W.acct.numbers[0].phone_number);
  assert.equal(m.data.body, 'Do you fix leaking taps?');
  assert.deepEqual(m.data.media_urls, []);
  assert.equal(m.metadata.source, 'webhook:twilio');

  // Twilio retries: 200 again, nothing more stored.
  const before = inWs();
  for (let i = 0; i < 3; i++) {
    const again = await postTwilio(env.srv, PATH, p, { token: W.acct.token });
    assert.equal(again.status, 200);
  }
  assert.equal(inWs(), before);

  // A second message from the same number lands on the same contact.
  const p2 = inboundParams(W.acct, { from, body: 'Also the shower', to: W.acct.numbers[1].phone_number });
  assert.equal((await postTwilio(env.srv, PATH, p2, { token: W.acct.token })).status, 200);
  const second = exportEvents(env.db, { workspace: W.ws.id, types: ['MessageReceived'] }).find(
    (e) => e.data.provider_id === p2.MessageSid,
  );
  assert.equal(second.stream, created[0].stream);
  assert.equal(inWs(`type = 'ContactCreated'`), countEvents(env.db, `workspace_id = '${W.ws.id}' AND type = 'ContactCreated'`));
});

test('missing, wrong or stale signatures: 403 and nothing stored', async () => {
  const from = newPhone();
  const before = inWs();
  const p = inboundParams(W.acct, { from });
  const cases = [
    ['no signature', { sign: false }],
    ['empty signature', { sign: '' }],
    ['garbage', { sign: 'not-a-signature' }],
    ['another token', { sign: getExpectedTwilioSignature('0'.repeat(32), PUBLIC_URL + PATH, p) }],
    ['another URL', { sign: getExpectedTwilioSignature(W.acct.token, 'https://evil.example.com' + PATH, p) }],
    ['another path', { sign: getExpectedTwilioSignature(W.acct.token, PUBLIC_URL + '/webhooks/twilio/voice', p) }],
    ['a query we did not get', { sign: getExpectedTwilioSignature(W.acct.token, PUBLIC_URL + PATH + '?x=1', p) }],
  ];
  for (const [name, opts] of cases) {
    const r = await postTwilio(env.srv, PATH, p, { token: W.acct.token, ...opts });
    assert.equal(r.status, 403, name);
    assert.equal(JSON.parse(r.text).error.code, 'invalid_signature', name);
  }
  // A body changed after signing: Body, an added parameter, a removed one.
  const sig = getExpectedTwilioSignature(W.acct.token, PUBLIC_URL + PATH, p);
  for (const changed of [{ ...p, Body: 'changed' }, { ...p, Extra: '1' }, (({ ToCity, ...rest }) => rest)(p)]) {
    const r = await postTwilio(env.srv, PATH, changed, { sign: sig });
    assert.equal(r.status, 403);
  }
  // The right signature for another account's workspace does not pass for this AccountSid.
  const other = await twilioWorkspace(env.srv, env.fake, { numbers: 1 });
  const foreign = inboundParams(other.acct, { from, to: W.acct.numbers[0].phone_number });
  assert.equal((await postTwilio(env.srv, PATH, foreign, { token: other.acct.token })).status, 403);
  // A number no workspace has.
  const nowhere = inboundParams(W.acct, { from, to: '+15557770000' });
  assert.equal((await postTwilio(env.srv, PATH, nowhere, { token: W.acct.token })).status, 403);
  assert.equal(inWs(), before, 'something was stored');
});

test('signatures over the query, repeated parameters, and the URL with its default port', async () => {
  const from = newPhone();
  // With a query string: signed over the URL with it.
  const p1 = inboundParams(W.acct, { from, body: 'q' });
  assert.equal((await postTwilio(env.srv, PATH, p1, { token: W.acct.token, query: '?tag=a%20b&x=1' })).status, 200);
  // Repeated names (Twilio signs each name's values sorted).
  const p2 = Object.entries(inboundParams(W.acct, { from, body: 'repeated' }));
  p2.push(['Tag', 'zeta'], ['Tag', 'alpha']);
  assert.equal((await postTwilio(env.srv, PATH, p2, { token: W.acct.token })).status, 200);
  // Signed over the URL with :443 (some of Twilio's configurations do): accepted, as Twilio's own
  // validators accept it.
  const p3 = inboundParams(W.acct, { from, body: 'port' });
  const sig = getExpectedTwilioSignature(W.acct.token, 'https://switchboard.example.com:443' + PATH, p3);
  assert.equal((await postTwilio(env.srv, PATH, p3, { sign: sig })).status, 200);
  const sids = new Set(
    exportEvents(env.db, { workspace: W.ws.id, types: ['MessageReceived'] }).map((e) => e.data.provider_id),
  );
  for (const s of [p1.MessageSid, p3.MessageSid]) assert.ok(sids.has(s));
});

test('MMS with media, and WhatsApp', async () => {
  const from = newPhone();
  const mms = {
    ...inboundParams(W.acct, { from, body: 'see photos', sid: newSid('MM') }),
    NumMedia: '2',
    MediaUrl0: 'https://api.twilio.com/2010-04-01/Accounts/x/Messages/y/Media/ME1',
    MediaContentType0: 'image/jpeg',
    MediaUrl1: 'https://api.twilio.com/2010-04-01/Accounts/x/Messages/y/Media/ME2',
    MediaContentType1: 'image/png',
  };
  assert.equal((await postTwilio(env.srv, PATH, mms, { token: W.acct.token })).status, 200);
  const wa = {
    ...inboundParams(W.acct, { from: 'whatsapp:' + from, to: 'whatsapp:' + W.acct.numbers[0].phone_number, body: 'hola' }),
    ProfileName: 'Ana Cliente',
    WaId: from.slice(1),
  };
  assert.equal((await postTwilio(env.srv, PATH, wa, { token: W.acct.token })).status, 200);
  const got = exportEvents(env.db, { workspace: W.ws.id, types: ['MessageReceived'] });
  const m = got.find((e) => e.data.provider_id === mms.MessageSid);
  assert.equal(m.data.channel, 'mms');
  assert.deepEqual(m.data.media_urls, [mms.MediaUrl0, mms.MediaUrl1]);
  const w = got.find((e) => e.data.provider_id === wa.MessageSid);
  assert.equal(w.data.channel, 'whatsapp');
  assert.equal(w.data.from, from);
  assert.equal(w.stream, m.stream, 'one contact for the number, whatever the channel');
});

test('malformed bodies: 400 (or 415), nothing stored', async () => {
  const before = inWs();
  const post = (body, ct = 'application/x-www-form-urlencoded') =>
    fetch(env.srv.url + PATH, { method: 'POST', headers: { 'content-type': ct, 'x-twilio-signature': 'x' }, body });
  const p = new URLSearchParams(inboundParams(W.acct, { from: newPhone() })).toString();
  assert.equal((await post(p, 'application/json')).status, 415);
  assert.equal((await post(p + '&Body=%zz')).status, 400);
  assert.equal((await post(p + '&Body=%00')).status, 400);
  assert.equal((await post(p + '&Body=%C3%28')).status, 400);
  for (const drop of ['From', 'To', 'AccountSid']) {
    const q = new URLSearchParams(p);
    q.delete(drop);
    const r = await post(q.toString());
    assert.equal(r.status, 400, drop);
    assert.equal((await r.json()).error.field, drop);
  }
  const q = new URLSearchParams(p);
  q.set('NumMedia', '3');
  assert.equal((await post(q.toString())).status, 400);
  assert.equal(inWs(), before);
});

test('50 concurrent first messages from one unknown number make one contact', async () => {
  const from = newPhone();
  const before = inWs(`type = 'ContactCreated'`);
  const params = Array.from({ length: 50 }, (_, i) => inboundParams(W.acct, { from, body: `burst ${i}` }));
  const rs = await Promise.all(params.map((p) => postTwilio(env.srv, PATH, p, { token: W.acct.token })));
  assert.deepEqual(
    rs.map((r) => r.status),
    rs.map(() => 200),
  );
  assert.equal(inWs(`type = 'ContactCreated'`), before + 1);
  const got = exportEvents(env.db, { workspace: W.ws.id, types: ['MessageReceived'] }).filter((e) =>
    params.some((p) => p.MessageSid === e.data.provider_id),
  );
  assert.equal(got.length, 50);
  assert.equal(new Set(got.map((e) => e.stream)).size, 1);
});

// Each loop remembers which contact a number's messages went to, and sends the next ones straight
// there; the contact refuses them (from_listed) once the number is no longer its own, and the
// webhook finds the number's contact again.  Bursts spread the messages over both loops.
test('messages follow the number when its contact loses it or is deleted', async () => {
  const from = newPhone();
  const spare = newPhone();
  const base = `/v1/workspaces/${W.ws.id}/contacts`;
  const burst = async (tag) => {
    const params = Array.from({ length: 6 }, (_, i) => inboundParams(W.acct, { from, body: `${tag} ${i}` }));
    const rs = await Promise.all(params.map((p) => postTwilio(env.srv, PATH, p, { token: W.acct.token })));
    assert.deepEqual(
      rs.map((r) => r.status),
      rs.map(() => 200),
      tag,
    );
    const got = exportEvents(env.db, { workspace: W.ws.id, types: ['MessageReceived'] }).filter((e) =>
      params.some((p) => p.MessageSid === e.data.provider_id),
    );
    assert.equal(got.length, params.length, tag);
    const streams = [...new Set(got.map((e) => e.stream))];
    assert.equal(streams.length, 1, `${tag}: one contact`);
    return streams[0].slice('contact-'.length);
  };
  const created = () => inWs(`type = 'ContactCreated'`);

  const n0 = created();
  const a = await burst('first');
  assert.equal(created(), n0 + 1);
  assert.equal((await burst('again')), a, 'remembered: the same contact');

  // The number moves from A to B: its messages go to B, and nobody else is created.
  assert.equal((await W.owner.client.patch(`${base}/${a}`, { phones: [spare] })).status, 200);
  const b = await W.owner.client.post(base, { name: 'Taker', phone: from });
  assert.equal(b.status, 201, b.text);
  assert.equal(await burst('moved'), b.json.id);
  assert.equal(created(), n0 + 2, 'only B was created');

  // B is deleted: the next messages make one new contact.
  assert.equal((await W.owner.client.del(`${base}/${b.json.id}`)).status, 204);
  const c = await burst('after delete');
  assert.notEqual(c, a);
  assert.notEqual(c, b.json.id);
  assert.equal(created(), n0 + 3);
});

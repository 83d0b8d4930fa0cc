// Twilio set-up per workspace (SPEC §5): PUT checks the credentials and configures the account
// (API key, TwiML app, every number's voice and SMS), a second PUT changes nothing, GET never shows
// a secret, DELETE undoes it all.  Against the fake Twilio.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { countEvents, PUBLIC_URL, sql, startAll, stopAll, workspace } from './messaging_support.mjs';

const DB = 'e2e_messaging_setup';
let env;

before(async () => {
  env = await startAll(DB);
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const changes = (fake, since) =>
  fake.requests().filter((r) => r.seq > since && r.method !== 'GET');

test('PUT configures the account; a second PUT changes nothing; GET shows no secret', async () => {
  const { srv, fake, db } = env;
  const { ws, owner } = await workspace(srv.url);
  const acct = fake.addAccount({ numbers: 3 });
  const before = fake.state.seq;
  const r = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.configured, true);
  assert.equal(r.json.account_sid, acct.sid);
  assert.match(r.json.api_key_sid, /^SK[0-9a-f]{32}$/);
  assert.match(r.json.twiml_app_sid, /^AP[0-9a-f]{32}$/);
  assert.deepEqual(r.json.numbers.map((n) => n.number).sort(), acct.numbers.map((n) => n.phone_number).sort());
  assert.equal(r.json.webhooks.messaging, `${PUBLIC_URL}/webhooks/twilio/messaging`);

  // At Twilio: one key, one app pointing at us, every number's voice on the app and SMS at us.
  const st = fake.snapshot().accounts[acct.sid];
  assert.equal(st.keys.length, 1);
  assert.equal(st.apps.length, 1);
  assert.equal(st.apps[0].sid, r.json.twiml_app_sid);
  assert.equal(st.apps[0].voice_url, `${PUBLIC_URL}/webhooks/twilio/voice`);
  assert.equal(st.apps[0].status_callback, `${PUBLIC_URL}/webhooks/twilio/voice/status`);
  for (const n of st.numbers) {
    assert.equal(n.voice_application_sid, r.json.twiml_app_sid);
    assert.equal(n.sms_url, `${PUBLIC_URL}/webhooks/twilio/messaging`);
    assert.equal(n.sms_method, 'POST');
  }
  // The key's secret authenticates the later requests: the account token was used only to check
  // the account and make the key.
  const afterSetup = fake.requests().filter((r) => r.seq > before);
  const tokenUses = afterSetup.filter((q) => q.auth && q.auth.user === acct.sid);
  assert.deepEqual(tokenUses.map((q) => q.path).sort(), [
    `/2010-04-01/Accounts/${acct.sid}.json`,
    `/2010-04-01/Accounts/${acct.sid}/Keys.json`,
  ].sort());

  // Never a secret: not in the answers, the log, the server's output, or the database unsealed.
  const g = await owner.client.get(`/v1/workspaces/${ws.id}/twilio`);
  assert.equal(g.status, 200);
  const secret = st.keys[0].secret;
  for (const text of [r.text, g.text, srv.log(), sql(db, "SELECT string_agg(encode(payload, 'escape'), '') FROM events")]) {
    assert.ok(!text.includes(acct.token), 'the auth token leaked');
    assert.ok(!text.includes(secret), 'the API key secret leaked');
  }
  assert.equal(sql(db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}'`), '1');
  assert.equal(sql(db, `SELECT count(*) FROM secrets WHERE position('${acct.token}'::bytea IN sealed) > 0`), '0');

  // A second PUT: nothing changes at Twilio, nothing new in the log.
  const events = countEvents(db, `workspace_id = '${ws.id}'`);
  const seq = fake.state.seq;
  const r2 = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(r2.status, 200, r2.text);
  assert.deepEqual(changes(fake, seq), [], 'a second PUT made changes at Twilio');
  assert.equal(countEvents(db, `workspace_id = '${ws.id}'`), events);
  assert.equal(r2.json.api_key_sid, r.json.api_key_sid);
  assert.equal(r2.json.twiml_app_sid, r.json.twiml_app_sid);
  assert.ok(Object.values(r2.json.changes).every((v) => v === 'unchanged'), JSON.stringify(r2.json.changes));
  assert.equal(sql(db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}'`), '1');

  // Something changed at Twilio: only that is put right.
  const num = fake.state.accounts.get(acct.sid).numbers[1];
  num.sms_url = 'https://elsewhere.example.com/sms';
  const seq2 = fake.state.seq;
  const r3 = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(r3.status, 200);
  const fixed = changes(fake, seq2);
  assert.deepEqual(fixed.map((q) => q.path), [`/2010-04-01/Accounts/${acct.sid}/IncomingPhoneNumbers/${num.sid}.json`]);
  assert.equal(r3.json.changes[num.phone_number], 'configured');
  assert.equal(num.sms_url, `${PUBLIC_URL}/webhooks/twilio/messaging`);
});

test('bad credentials: 400 and nothing stored; only admins may set up', async () => {
  const { srv, fake, db } = env;
  const { ws, owner } = await workspace(srv.url);
  const acct = fake.addAccount({ numbers: 1 });
  const events = countEvents(db, `workspace_id = '${ws.id}'`);
  const bad = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: 'f'.repeat(32) });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error.code, 'invalid_credentials');
  assert.equal(bad.json.error.field, 'auth_token');
  assert.equal(countEvents(db, `workspace_id = '${ws.id}'`), events);
  assert.equal(sql(db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}'`), '0');
  for (const [body, field] of [
    [{ auth_token: acct.token }, 'account_sid'],
    [{ account_sid: 'AC123', auth_token: acct.token }, 'account_sid'],
    [{ account_sid: acct.sid }, 'auth_token'],
    [{ account_sid: acct.sid, auth_token: 'has space' }, 'auth_token'],
    [{ account_sid: acct.sid, auth_token: acct.token, extra: 1 }, 'extra'],
  ]) {
    const r = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.field, field);
  }
  // Twilio down: 502, nothing stored.
  fake.fault({ path: `/2010-04-01/Accounts/${acct.sid}.json`, status: 503 });
  const down = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(down.status, 502);
  assert.equal(countEvents(db, `workspace_id = '${ws.id}'`), events);
  // Strangers: 404 (the workspace is not theirs); no token: 401.
  const other = await workspace(srv.url);
  const r = await other.owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(r.status, 404);
  const anon = await owner.client.as(null).get(`/v1/workspaces/${ws.id}/twilio`);
  assert.equal(anon.status, 401);
});

test('a number another workspace has is reported, not taken', async () => {
  const { srv, fake } = env;
  const a = await workspace(srv.url);
  const acct = fake.addAccount({ numbers: 2 });
  const ra = await a.owner.client.put(`/v1/workspaces/${a.ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(ra.status, 200);
  // The same account in a second workspace: its numbers are the first workspace's.
  const b = await workspace(srv.url);
  const rb = await b.owner.client.put(`/v1/workspaces/${b.ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(rb.status, 200, rb.text);
  assert.deepEqual(rb.json.numbers, []);
  for (const n of acct.numbers) assert.equal(rb.json.changes[n.phone_number], 'taken');
});

test('a number gone from the account is removed and released by the next PUT', async () => {
  const { srv, fake } = env;
  const { ws, owner } = await workspace(srv.url);
  const acct = fake.addAccount({ numbers: 2 });
  const put = () => owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal((await put()).status, 200);
  const [gone] = acct.numbers.splice(0, 1); // released at Twilio meanwhile
  const r = await put();
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.changes[gone.phone_number], 'removed');
  assert.deepEqual(r.json.numbers.map((n) => n.number), acct.numbers.map((n) => n.phone_number));
  const g = await owner.client.get(`/v1/workspaces/${ws.id}/twilio`);
  assert.deepEqual(g.json.numbers.map((n) => n.number), acct.numbers.map((n) => n.phone_number));
  // Released: the number bought by another account is that account's workspace's.
  const b = await workspace(srv.url);
  const other = fake.addAccount({ numbers: [gone.phone_number] });
  const rb = await b.owner.client.put(`/v1/workspaces/${b.ws.id}/twilio`, { account_sid: other.sid, auth_token: other.token });
  assert.equal(rb.status, 200, rb.text);
  assert.equal(rb.json.changes[gone.phone_number], 'configured');
  assert.deepEqual(rb.json.numbers.map((n) => n.number), [gone.phone_number]);
});

test('DELETE undoes it all', async () => {
  const { srv, fake, db } = env;
  const { ws, owner } = await workspace(srv.url);
  const acct = fake.addAccount({ numbers: 2 });
  const r = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(r.status, 200);
  const d = await owner.client.del(`/v1/workspaces/${ws.id}/twilio`);
  assert.equal(d.status, 204, d.text);
  const st = fake.snapshot().accounts[acct.sid];
  assert.equal(st.apps.length, 0, 'the TwiML app is deleted');
  assert.equal(st.keys.length, 0, 'the API key is deleted');
  for (const n of st.numbers) {
    assert.equal(n.sms_url, '');
    assert.equal(n.voice_application_sid, '');
  }
  const g = await owner.client.get(`/v1/workspaces/${ws.id}/twilio`);
  assert.equal(g.json.configured, false);
  assert.deepEqual(g.json.numbers, []);
  assert.equal(sql(db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}'`), '0');
  assert.equal(countEvents(db, `workspace_id = '${ws.id}' AND type = 'TwilioCleared'`), 1);
  // The numbers are free again: another workspace may take them.
  const b = await workspace(srv.url);
  const rb = await b.owner.client.put(`/v1/workspaces/${b.ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  assert.equal(rb.status, 200);
  assert.equal(rb.json.numbers.length, 2);
  // DELETE again: nothing to undo.
  const d2 = await owner.client.del(`/v1/workspaces/${ws.id}/twilio`);
  assert.equal(d2.status, 204);
});

// E-mail end to end: the workspace's sender and sealed Resend key; an e-mail goes out once through
// the fake Resend with the message id as Idempotency-Key and as a tag (500 then success: one
// e-mail); Resend's webhooks, signed with svix's own library, record delivered / opened / bounced
// and opt the contact out on a complaint; wrong or stale signatures get 403 and store nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, countEvents, eventually, exportEvents, sql, startAll, stopAll, svixHeaders, workspace } from './messaging_support.mjs';

const DB = 'e2e_messaging_email';
const KEY = 're_test_' + randomBytes(12).toString('hex');
const HOOK = 'whsec_' + randomBytes(24).toString('base64');
let env, ws, owner;

before(async () => {
  env = await startAll(DB, { env: { SWITCHBOARD_OUTBOX_RETRY_BASE_MS: '100' } });
  ({ ws, owner } = await workspace(env.srv.url));
});

after(async () => {
  const code = await stopAll(env, DB);
  assert.equal(code, 0, 'server exits cleanly');
});

const api = () => new Client(env.srv.url, owner.token);
const emailsTo = (addr) => env.fake.snapshot().emails.filter((e) => [].concat(e.to).includes(addr));
let seq = 0;
async function contact() {
  const email = `bea${++seq}-${randomBytes(3).toString('hex')}@example.com`;
  const r = await api().post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Bea', email });
  assert.equal(r.status, 201, r.text);
  return { id: r.json.id, email };
}
const outcome = (c, mid) =>
  eventually(() => {
    const evs = exportEvents(env.db, { stream: `contact-${c.id}`, types: ['MessageSent', 'MessageFailed'] }).filter((e) => e.data.message_id === mid);
    return evs.length ? evs : null;
  }, { timeoutMs: 20000 });

async function hook(event, { secret = HOOK, at, query = `?workspace=${ws.id}` } = {}) {
  const body = JSON.stringify(event);
  const res = await fetch(`${env.srv.url}/webhooks/resend${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...svixHeaders(secret, body, { at }) },
    body,
  });
  return res.status;
}

test('set-up: sealed, repeatable, never shown', async () => {
  const r = await api().put(`/v1/workspaces/${ws.id}/email`, { from: 'Hello@Acme.example', from_name: 'Acme Plumbing', api_key: KEY, webhook_secret: HOOK });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.configured, true);
  assert.equal(r.json.from, 'hello@acme.example');
  assert.equal(r.json.webhook_url, `https://switchboard.example.com/webhooks/resend?workspace=${ws.id}`);
  const g = await api().get(`/v1/workspaces/${ws.id}/email`);
  for (const text of [r.text, g.text, env.srv.log()]) {
    assert.ok(!text.includes(KEY));
    assert.ok(!text.includes(HOOK.slice(6)));
  }
  const events = countEvents(env.db, `workspace_id = '${ws.id}'`);
  assert.equal((await api().put(`/v1/workspaces/${ws.id}/email`, { from: 'hello@acme.example', from_name: 'Acme Plumbing', api_key: KEY, webhook_secret: HOOK })).status, 200);
  assert.equal(countEvents(env.db, `workspace_id = '${ws.id}'`), events, 'the same set-up again stores nothing');
  assert.equal(sql(env.db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}' AND kind = 'resend'`), '1');
  for (const [body, field] of [
    [{ api_key: KEY }, 'from'],
    [{ from: 'nope', api_key: KEY }, 'from'],
    [{ from: 'a@b.example' }, 'api_key'],
    [{ from: 'a@b.example', api_key: KEY, webhook_secret: 'not base64 !' }, 'webhook_secret'],
  ]) {
    const bad = await api().put(`/v1/workspaces/${ws.id}/email`, body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.field, field);
  }
});

test('an e-mail goes out once: Idempotency-Key, tags, the sender; 500 then success', async () => {
  const c = await contact();
  env.fake.fault({ path: '/emails', method: 'POST', status: 500 });
  const r = await api().post(`/v1/workspaces/${ws.id}/contacts/${c.id}/messages`, { channel: 'email', subject: 'Your quote', body: 'Attached is your quote.' });
  assert.equal(r.status, 202, r.text);
  const [ev] = await outcome(c, r.json.id);
  assert.equal(ev.type, 'MessageSent');
  const sent = emailsTo(c.email);
  assert.equal(sent.length, 1, 'Resend holds one e-mail');
  assert.equal(ev.data.provider_id, sent[0].id);
  assert.equal(sent[0].from, 'Acme Plumbing <hello@acme.example>');
  assert.equal(sent[0].subject, 'Your quote');
  assert.equal(sent[0].text, 'Attached is your quote.');
  assert.equal(sent[0].idempotency_key, r.json.id);
  assert.deepEqual(sent[0].tags, [
    { name: 'message_id', value: r.json.id },
    { name: 'contact_id', value: c.id },
    { name: 'workspace_id', value: ws.id },
  ]);
  const reqs = env.fake.requests({ path: '/emails', method: 'POST' }).filter((q) => q.headers['idempotency-key'] === r.json.id);
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].headers.authorization, `Bearer ${KEY}`);
});

test('Resend webhooks: delivered, opened, bounced, complained; bad signatures store nothing', async () => {
  const c = await contact();
  const r = await api().post(`/v1/workspaces/${ws.id}/contacts/${c.id}/messages`, { channel: 'email', subject: 'Hi', body: 'Hello' });
  await outcome(c, r.json.id);
  const [email] = emailsTo(c.email);
  const ev = (type, extra = {}) => ({ type, created_at: new Date().toISOString(), data: { email_id: email.id, to: [c.email], tags: email.tags, ...extra } });
  const types = () => exportEvents(env.db, { stream: `contact-${c.id}` }).map((e) => e.type);

  const before = types().length;
  assert.equal(await hook(ev('email.delivered'), { secret: 'whsec_' + randomBytes(24).toString('base64') }), 403);
  assert.equal(await hook(ev('email.delivered'), { at: new Date(Date.now() - 10 * 60 * 1000) }), 403, 'too old');
  const bare = await fetch(`${env.srv.url}/webhooks/resend?workspace=${ws.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(bare.status, 403);
  assert.equal(types().length, before);

  assert.equal(await hook(ev('email.delivered')), 200);
  assert.equal(await hook(ev('email.delivered')), 200, 'a repeat');
  assert.equal(await hook(ev('email.opened')), 200);
  assert.equal(await hook(ev('email.delivery_delayed')), 200, 'a type that records nothing');
  // Without ?workspace=: the tags name it.
  assert.equal(await hook(ev('email.clicked'), { query: '' }), 200);
  const t = types();
  assert.equal(t.filter((x) => x === 'MessageDelivered').length, 1);
  assert.equal(t.filter((x) => x === 'MessageRead').length, 1);

  // A bounce fails a message; a complaint opts the contact out of e-mail.
  const d = await contact();
  const r2 = await api().post(`/v1/workspaces/${ws.id}/contacts/${d.id}/messages`, { channel: 'email', subject: 'x', body: 'y' });
  await outcome(d, r2.json.id);
  const [e2] = emailsTo(d.email);
  assert.equal(await hook({ type: 'email.bounced', data: { email_id: e2.id, to: [d.email], tags: e2.tags, bounce: { message: 'Mailbox does not exist' } } }), 200);
  const failed = exportEvents(env.db, { stream: `contact-${d.id}`, types: ['MessageFailed'] });
  assert.equal(failed.length, 1);
  assert.equal(failed[0].data.status, 'undelivered');
  assert.equal(failed[0].data.code, 'bounced');
  assert.equal(failed[0].data.error, 'Mailbox does not exist');

  assert.equal(await hook(ev('email.complained')), 200);
  assert.equal(exportEvents(env.db, { stream: `contact-${c.id}`, types: ['ContactOptedOut'] })[0].data.channel, 'email');
  const refused = await api().post(`/v1/workspaces/${ws.id}/contacts/${c.id}/messages`, { channel: 'email', subject: 'again', body: 'x' });
  assert.equal(refused.status, 409);
  assert.equal(refused.json.error.code, 'opted_out');
});

test('no e-mail set-up: the message fails not_configured; DELETE clears it', async () => {
  const other = await workspace(env.srv.url);
  const c = (await other.owner.client.as(other.owner.token).post(`/v1/workspaces/${other.ws.id}/contacts`, { email: 'x@example.com' })).json;
  const r = await new Client(env.srv.url, other.owner.token).post(`/v1/workspaces/${other.ws.id}/contacts/${c.id}/messages`, { channel: 'email', subject: 's', body: 'b' });
  assert.equal(r.status, 202);
  const [ev] = await outcome(c, r.json.id);
  assert.equal(ev.type, 'MessageFailed');
  assert.equal(ev.data.code, 'not_configured');

  assert.equal((await api().del(`/v1/workspaces/${ws.id}/email`)).status, 204);
  const g = await api().get(`/v1/workspaces/${ws.id}/email`);
  assert.equal(g.json.configured, false);
  assert.equal(sql(env.db, `SELECT count(*) FROM secrets WHERE workspace_id = '${ws.id}'`), '0');
});

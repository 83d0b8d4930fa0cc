// Accounts and sessions end to end: sign-up, login, the same answer for an unknown e-mail and a
// wrong password, rate limits per account and per address, token expiry, logout, /v1/me.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, createDb, dropDb, eventCount, serverFixture, signup, sql, startServer, uniqueEmail } from './api_support.mjs';

const DB_NAME = 'e2e_api_auth';
let anon;
const fx = serverFixture(DB_NAME, {
  env: {
    SWITCHBOARD_LOGIN_MAX_FAILURES: '3',
    SWITCHBOARD_LOGIN_MAX_FAILURES_ADDR: '1000',
    SWITCHBOARD_LOGIN_WINDOW_SECONDS: '60',
  },
  setup: ({ srv }) => {
    anon = new Client(srv.url);
  },
});

test('sign-up answers 201 {user, token}; the token works; the log holds no password hash', async () => {
  const email = uniqueEmail('Ana');
  const r = await anon.post('/v1/auth/signup', { email: email.toUpperCase(), password: 'a long secret', name: 'Ana' });
  assert.equal(r.status, 201);
  assert.equal(r.json.user.email, email.toLowerCase());
  assert.equal(r.json.user.name, 'Ana');
  assert.match(r.json.user.id, /^[0-9a-f-]{36}$/);
  assert.match(r.json.token, /^sbt_[A-Za-z0-9_-]{43}$/);
  assert.match(r.json.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const me = await anon.as(r.json.token).get('/v1/me');
  assert.equal(me.status, 200);
  assert.equal(me.json.id, r.json.user.id);
  assert.equal(me.json.email, email.toLowerCase());
  // The UserRegistered event carries a credential reference, never the hash or the password.
  const hash = sql(fx.db, `SELECT password_hash FROM auth_credentials WHERE user_id = '${r.json.user.id}'`);
  assert.match(hash, /^\$argon2id\$/);
  const payloads = sql(fx.db, `SELECT encode(payload, 'escape') FROM events WHERE stream = 'user-${r.json.user.id}'`);
  assert.ok(payloads.includes('cred:'), 'credential_ref is stored');
  assert.ok(!payloads.includes('$argon2'), 'no hash in the log');
  assert.ok(!payloads.includes('a long secret'), 'no password in the log');
  // Only the token's hash is stored.
  assert.equal(sql(fx.db, `SELECT count(*) FROM auth_sessions WHERE token_hash = convert_to('${r.json.token}', 'UTF8')`), '0');
});

test('sign-up validation: each bad field is named, nothing is stored', async () => {
  const before = eventCount(fx.db);
  const cases = [
    [{ password: 'long enough', name: 'A' }, 400, 'email'],
    [{ email: 'not-an-email', password: 'long enough', name: 'A' }, 400, 'email'],
    [{ email: uniqueEmail(), password: 'short', name: 'A' }, 400, 'password'],
    [{ email: uniqueEmail(), name: 'A' }, 400, 'password'],
    [{ email: uniqueEmail(), password: 12345678, name: 'A' }, 400, 'password'],
    [{ email: uniqueEmail(), password: 'long enough' }, 400, 'name'],
    [{ email: uniqueEmail(), password: 'long enough', name: '' }, 400, 'name'],
    [{ email: uniqueEmail(), password: 'long enough', name: 'x'.repeat(201) }, 400, 'name'],
    [{ email: uniqueEmail(), password: 'x'.repeat(1025), name: 'A' }, 400, 'password'],
    [{ email: uniqueEmail(), password: 'long enough', name: 'A', admin: true }, 400, 'admin'],
  ];
  for (const [body, status, field] of cases) {
    const r = await anon.post('/v1/auth/signup', body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.json.error.field, field, JSON.stringify(body));
    assert.equal(typeof r.json.error.code, 'string');
    assert.equal(typeof r.json.error.message, 'string');
  }
  assert.equal(eventCount(fx.db), before);
});

test('one account per e-mail, even when sign-ups race', async () => {
  const email = uniqueEmail('race');
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      anon.post('/v1/auth/signup', { email, password: 'a long secret', name: `Racer ${i}` }),
    ),
  );
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
  for (const r of results.filter((x) => x.status === 409)) assert.equal(r.json.error.code, 'email_taken');
  assert.equal(sql(fx.db, `SELECT count(*) FROM auth_credentials WHERE email = '${email}' AND active`), '1');
  assert.equal(sql(fx.db, `SELECT count(*) FROM events WHERE type = 'UserRegistered' AND encode(payload, 'escape') LIKE '%${email}%'`), '1');
});

test('login: 200 with a new token; a wrong password and an unknown e-mail get the same 401', async () => {
  const u = await signup(fx.srv.url, { password: 'the right one' });
  const ok = await anon.post('/v1/auth/login', { email: u.email, password: 'the right one' });
  assert.equal(ok.status, 200);
  assert.notEqual(ok.json.token, u.token);
  assert.equal(ok.json.user_id, u.user.id);
  assert.equal((await anon.as(ok.json.token).get('/v1/me')).status, 200);

  const wrong = await anon.post('/v1/auth/login', { email: u.email, password: 'the wrong one' });
  const unknown = await anon.post('/v1/auth/login', { email: uniqueEmail('nobody'), password: 'the wrong one' });
  assert.equal(wrong.status, 401);
  assert.equal(unknown.status, 401);
  assert.deepEqual(wrong.json, unknown.json);
  assert.equal(wrong.json.error.code, 'invalid_credentials');
});

test('failed logins are limited per account: 429 with Retry-After, even with the right password', async () => {
  const u = await signup(fx.srv.url, { password: 'the right one' });
  for (let i = 0; i < 3; i++) {
    const r = await anon.post('/v1/auth/login', { email: u.email, password: `wrong ${i}` });
    assert.equal(r.status, 401);
  }
  const limited = await anon.post('/v1/auth/login', { email: u.email, password: 'the right one' });
  assert.equal(limited.status, 429);
  assert.equal(limited.json.error.code, 'rate_limited');
  const ra = Number(limited.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
  // Another account from the same address is not affected (the address limit is high here).
  const v = await signup(fx.srv.url, { password: 'the right one' });
  assert.equal((await anon.post('/v1/auth/login', { email: v.email, password: 'the right one' })).status, 200);
});

test('sign-ups are limited per client address: 429 with Retry-After, nothing stored', async () => {
  const db4 = createDb(`${DB_NAME}_signups`);
  const s4 = await startServer({ db: db4, env: { SWITCHBOARD_SIGNUPS_PER_MINUTE: '1' } });
  try {
    const c = new Client(s4.url);
    // A burst of twice the rate per minute.
    for (let i = 0; i < 2; i++)
      assert.equal((await c.post('/v1/auth/signup', { email: uniqueEmail(`burst${i}`), password: 'a long secret', name: 'B' })).status, 201);
    const before = eventCount(db4);
    const email = uniqueEmail('third');
    const r = await c.post('/v1/auth/signup', { email, password: 'a long secret', name: 'C' });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(eventCount(db4), before, 'nothing stored');
    assert.equal((await c.post('/v1/auth/login', { email, password: 'a long secret' })).status, 401);
    // Malformed sign-ups are refused before they count.
    assert.equal((await c.post('/v1/auth/signup', { email: 'not an address', password: 'a long secret', name: 'D' })).status, 400);
    const m = await (await fetch(`${s4.url}/metrics`)).text();
    assert.match(m, /^switchboard_auth_signup_rate_limited_total 1$/m);
    // The group commits' latency histogram: cumulative buckets, +Inf equal to the count.
    const buckets = [...m.matchAll(/^switchboard_append_commit_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)];
    assert.equal(buckets.length, 13);
    assert.equal(buckets.at(-1)[1], '+Inf');
    for (let i = 1; i < buckets.length; i++) assert.ok(Number(buckets[i][2]) >= Number(buckets[i - 1][2]));
    assert.match(m, new RegExp(`^switchboard_append_commit_seconds_count ${buckets.at(-1)[2]}$`, 'm'));
    assert.match(m, /^switchboard_append_commit_seconds_sum \d+\.\d{6}$/m);
  } finally {
    assert.equal(await s4.stop(), 0);
    dropDb(`${DB_NAME}_signups`);
  }
});

test('failed logins are limited per client address across accounts', async () => {
  const db2 = createDb(`${DB_NAME}_addr`);
  const s2 = await startServer({ db: db2, env: { SWITCHBOARD_LOGIN_MAX_FAILURES: '100', SWITCHBOARD_LOGIN_MAX_FAILURES_ADDR: '4' } });
  try {
    const c = new Client(s2.url);
    const u = await signup(s2.url, { password: 'the right one' });
    for (let i = 0; i < 4; i++) {
      const r = await c.post('/v1/auth/login', { email: uniqueEmail(`spray${i}`), password: 'guess' });
      assert.equal(r.status, 401);
    }
    const r = await c.post('/v1/auth/login', { email: u.email, password: 'the right one' });
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  } finally {
    assert.equal(await s2.stop(), 0);
    dropDb(`${DB_NAME}_addr`);
  }
});

test('logout revokes the token at once on every loop; other sessions stay valid', async () => {
  const u = await signup(fx.srv.url);
  const other = await anon.post('/v1/auth/login', { email: u.email, password: u.password });
  // Warm every loop's cache: many requests spread over connections.
  const warm = await Promise.all(Array.from({ length: 16 }, () => u.client.get('/v1/me')));
  assert.ok(warm.every((r) => r.status === 200));
  const out = await u.client.post('/v1/auth/logout', undefined);
  assert.equal(out.status, 204);
  const after = await Promise.all(Array.from({ length: 16 }, () => u.client.get('/v1/me')));
  assert.deepEqual(after.map((r) => r.status), Array(16).fill(401));
  assert.equal(after[0].headers.get('www-authenticate')?.startsWith('Bearer'), true);
  assert.equal((await anon.as(other.json.token).get('/v1/me')).status, 200);
  assert.equal((await u.client.post('/v1/auth/logout', undefined)).status, 401);
});

test('tokens expire', async () => {
  const db3 = createDb(`${DB_NAME}_ttl`);
  const s3 = await startServer({ db: db3, env: { SWITCHBOARD_TOKEN_TTL_SECONDS: '2' } });
  try {
    const u = await signup(s3.url);
    const c = new Client(s3.url, u.token);
    assert.equal((await c.get('/v1/me')).status, 200);
    const expiresAt = Date.parse((await new Client(s3.url).post('/v1/auth/login', { email: u.email, password: u.password })).json.expires_at);
    assert.ok(expiresAt - Date.now() <= 2500, 'expires within the configured TTL');
    // Wait for the clock to pass the expiry (the point of this test), then the token is refused.
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < 10000) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await c.get('/v1/me')).status;
    }
    assert.equal(status, 401);
    assert.ok(Date.now() - started >= 1000, 'not refused before it expired');
  } finally {
    assert.equal(await s3.stop(), 0);
    dropDb(`${DB_NAME}_ttl`);
  }
});

test('bearer tokens: missing, malformed, unknown, and ?access_token= is not accepted on the API', async () => {
  const u = await signup(fx.srv.url);
  const cases = [
    {},
    { authorization: 'Bearer' },
    { authorization: 'Basic dXNlcjpwYXNz' },
    { authorization: 'Bearer not-a-token' },
    { authorization: `Bearer sbt_${'A'.repeat(43)}` },
    { authorization: `Bearer ${u.token}x` },
    { authorization: `Bearer ${u.token.slice(0, -1)}` },
  ];
  for (const headers of cases) {
    const r = await anon.get('/v1/me', { headers });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.equal(r.json.error.code, 'unauthorized');
  }
  assert.equal((await anon.get(`/v1/me?access_token=${u.token}`)).status, 401);
  assert.equal((await anon.get('/v1/me', { headers: { authorization: `bearer ${u.token}` } })).status, 200);
});

test('a sign-up cut short after registering the user still logs in: the user names its credential', async () => {
  const u = await signup(fx.srv.url, { password: 'the right one' });
  // As if the server had crashed between UserRegistered and activating the credential row.
  sql(fx.db, `UPDATE auth_credentials SET active = false WHERE user_id = '${u.user.id}'`);
  const ok = await anon.post('/v1/auth/login', { email: u.email, password: 'the right one' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.user_id, u.user.id);
  assert.equal(sql(fx.db, `SELECT active FROM auth_credentials WHERE user_id = '${u.user.id}'`), 't');
  // A stray inactive credential that the user's UserRegistered does not name never logs in.
  const v = await signup(fx.srv.url, { password: 'the right one' });
  sql(fx.db, `UPDATE auth_credentials SET active = false WHERE user_id = '${v.user.id}'`);
  sql(fx.db, `INSERT INTO auth_credentials (ref, user_id, email, password_hash, created_at)
           SELECT gen_random_uuid(), user_id, email, password_hash, now() + interval '1 second'
             FROM auth_credentials WHERE user_id = '${v.user.id}'`);
  const stray = await anon.post('/v1/auth/login', { email: v.email, password: 'the right one' });
  assert.equal(stray.status, 401);
});

test('PATCH /v1/me changes the name and, with the password, the e-mail address through its claim', async () => {
  const u = await signup(fx.srv.url, { name: 'Ann', password: 'the right one' });
  const other = await signup(fx.srv.url);
  const me = () => u.client.get('/v1/me');
  const etag0 = (await me()).headers.get('etag');
  const before = eventCount(fx.db);
  const newEmail = uniqueEmail('Ann.New');

  // Refused: no password, a wrong one, another account's address, a stale If-Match.
  let r = await u.client.patch('/v1/me', { email: newEmail });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'password');
  r = await u.client.patch('/v1/me', { email: newEmail, password: 'wrong' });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'wrong_password');
  r = await u.client.patch('/v1/me', { email: other.email.toUpperCase(), password: 'the right one' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'email_taken');
  assert.equal(r.json.error.field, 'email');
  r = await u.client.patch('/v1/me', { email: newEmail, password: 'the right one' }, { headers: { 'if-match': '"99"' } });
  assert.equal(r.status, 412);
  r = await u.client.patch('/v1/me', { email: 'not-an-address', password: 'the right one' });
  assert.equal(r.status, 400);
  r = await u.client.patch('/v1/me', { email: newEmail, password: 'the right one', role: 'owner' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'unknown_field');
  assert.equal(eventCount(fx.db), before, 'nothing stored');
  assert.equal(sql(fx.db, `SELECT count(*) FROM auth_credentials WHERE user_id = '${u.user.id}'`), '1', 'no stray credential');

  // Changed: name and address at once, conditional on the ETag.
  r = await u.client.patch('/v1/me', { email: newEmail, password: 'the right one', name: 'Ann B' }, { headers: { 'if-match': etag0 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.email, newEmail.toLowerCase());
  assert.equal(r.json.name, 'Ann B');
  assert.notEqual(r.headers.get('etag'), etag0);
  assert.equal((await me()).headers.get('etag'), r.headers.get('etag'));
  assert.equal((await me()).json.email, newEmail.toLowerCase());
  // The token still works; the login follows the address.
  assert.equal((await anon.post('/v1/auth/login', { email: u.email, password: 'the right one' })).status, 401);
  const again = await anon.post('/v1/auth/login', { email: newEmail, password: 'the right one' });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.user_id, u.user.id);
  // The old address is free again, the new one taken.
  assert.equal((await anon.post('/v1/auth/signup', { email: u.email, password: 'long enough', name: 'Newcomer' })).status, 201);
  assert.equal((await anon.post('/v1/auth/signup', { email: newEmail, password: 'long enough', name: 'Late' })).status, 409);
  const types = sql(fx.db, `SELECT string_agg(type, ',' ORDER BY position) FROM events WHERE stream = 'user-${u.user.id}'`);
  assert.match(types, /UserProfileUpdated/);
  assert.match(types, /UserCredentialChanged/);
  const payloads = sql(fx.db, `SELECT encode(payload, 'escape') FROM events WHERE stream = 'user-${u.user.id}'`);
  assert.ok(!payloads.includes('$argon2'), 'no hash in the log');

  // The name alone needs no password; an empty patch changes nothing.
  r = await u.client.patch('/v1/me', { name: 'Ann C' });
  assert.equal(r.status, 200);
  assert.equal(r.json.name, 'Ann C');
  const n = eventCount(fx.db);
  r = await u.client.patch('/v1/me', {});
  assert.equal(r.status, 200);
  assert.equal(r.json.name, 'Ann C');
  // Changing nothing still honours If-Match.
  assert.equal((await u.client.patch('/v1/me', {}, { headers: { 'if-match': '"1"' } })).status, 412);
  assert.equal((await u.client.patch('/v1/me', {}, { headers: { 'if-match': r.headers.get('etag') } })).status, 200);
  // The same address again: nothing to claim.
  r = await u.client.patch('/v1/me', { email: newEmail, password: 'anything' });
  assert.equal(r.status, 200);
  assert.equal(eventCount(fx.db), n);
  assert.equal((await anon.patch('/v1/me', { name: 'x' })).status, 401);
});

test('an e-mail change cut short before its credential became active logs in with the new address', async () => {
  const u = await signup(fx.srv.url, { password: 'the right one' });
  const newEmail = uniqueEmail('moved');
  const r = await u.client.patch('/v1/me', { email: newEmail, password: 'the right one' });
  assert.equal(r.status, 200, r.text);
  // As if the server had stopped after UserCredentialChanged, before switching the rows.
  sql(fx.db, `UPDATE auth_credentials SET active = NOT active WHERE user_id = '${u.user.id}'`);
  const ok = await anon.post('/v1/auth/login', { email: newEmail, password: 'the right one' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(sql(fx.db, `SELECT email FROM auth_credentials WHERE user_id = '${u.user.id}' AND active`), newEmail.toLowerCase());
  assert.equal(sql(fx.db, `SELECT count(*) FROM auth_credentials WHERE user_id = '${u.user.id}' AND active`), '1');
});

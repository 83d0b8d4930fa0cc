// GET /v1/workspaces/{ws}/voice/token (SPEC §5; docs/voice.md): the token the server answers is
// verified with npm jsonwebtoken against the API key secret the (fake) Twilio account handed out at
// set-up, and compared field by field, and byte for byte, with what twilio's own AccessToken +
// VoiceGrant issues for the same inputs at the same second.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import jwt from 'jsonwebtoken';
import twilio from 'twilio';
import { startAll, stopAll, twilioWorkspace } from './messaging_support.mjs';
import { signup, workspace } from './api_support.mjs';

const DB = 'e2e_voice_token';
let env, W, agent;
const hex = (u) => u.replaceAll('-', '');

before(async () => {
  env = await startAll(DB);
  W = await twilioWorkspace(env.srv, env.fake, { numbers: 1 });
  agent = await signup(env.srv.url);
  const m = await W.owner.client.post(`/v1/workspaces/${W.ws.id}/members`, { email: agent.email, role: 'agent' });
  assert.equal(m.status, 201, m.text);
});

after(async () => {
  assert.equal(await stopAll(env, DB), 0, 'server exits cleanly');
});

// What twilio's library issues for these inputs at unix time `now`.
function twilioToken({ account, key, secret, identity, app, now }) {
  const { AccessToken } = twilio.jwt;
  const realNow = Date.now;
  Date.now = () => now * 1000;
  try {
    const t = new AccessToken(account, key, secret, { identity, ttl: 3600 });
    t.addGrant(new AccessToken.VoiceGrant({ incomingAllow: true, outgoingApplicationSid: app }));
    return t.toJwt();
  } finally {
    Date.now = realNow;
  }
}

for (const who of ['owner', 'agent']) {
  test(`a ${who}'s token verifies with the API key secret and matches twilio's AccessToken`, async () => {
    const user = who === 'owner' ? W.owner : agent;
    const r = await user.client.get(`/v1/workspaces/${W.ws.id}/voice/token`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.deepEqual(Object.keys(r.json).sort(), ['expires_at', 'identity', 'token']);
    const { token, identity, expires_at } = r.json;
    assert.equal(identity, `w${hex(W.ws.id)}_u${hex(user.user.id)}`);
    assert.match(identity, /^[A-Za-z0-9_]{1,121}$/);

    const acct = env.fake.snapshot().accounts[W.acct.sid];
    assert.equal(acct.keys.length, 1);
    assert.equal(acct.apps.length, 1);
    const key = acct.keys[0];
    const app = acct.apps[0].sid;

    const { header, payload } = jwt.decode(token, { complete: true });
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT', cty: 'twilio-fpa;v=1' });
    const claims = jwt.verify(token, key.secret, { algorithms: ['HS256'] });
    assert.deepEqual(claims, payload);
    assert.throws(() => jwt.verify(token, key.secret + 'x', { algorithms: ['HS256'] }));
    assert.equal(claims.iss, key.sid);
    assert.equal(claims.sub, W.acct.sid);
    assert.equal(claims.jti, `${key.sid}-${claims.iat}`);
    assert.equal(claims.exp - claims.iat, 3600);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);
    assert.equal(new Date(expires_at).getTime(), claims.exp * 1000);
    assert.match(expires_at, /Z$/);
    assert.deepEqual(claims.grants, { identity, voice: { incoming: { allow: true }, outgoing: { application_sid: app } } });

    // Twilio's library, same inputs, same second: the same claims, in the same order, same bytes.
    const expected = twilioToken({ account: W.acct.sid, key: key.sid, secret: key.secret, identity, app, now: claims.iat });
    const theirs = jwt.decode(expected, { complete: true });
    assert.deepEqual(header, theirs.header);
    for (const f of ['jti', 'grants', 'iat', 'exp', 'iss', 'sub']) assert.deepEqual(claims[f], theirs.payload[f], f);
    assert.deepEqual(Object.keys(claims), Object.keys(theirs.payload));
    assert.equal(token, expected);
  });
}

test('who may have a token: members only, and only once Twilio is set up', async () => {
  const stranger = await signup(env.srv.url);
  assert.equal((await stranger.client.get(`/v1/workspaces/${W.ws.id}/voice/token`)).status, 404);
  assert.equal((await agent.client.as(null).get(`/v1/workspaces/${W.ws.id}/voice/token`)).status, 401);
  const bare = await workspace(env.srv.url, 'No phones');
  const r = await bare.owner.client.get(`/v1/workspaces/${bare.ws.id}/voice/token`);
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'twilio_not_configured');
  assert.ok(!env.srv.log().includes(env.fake.snapshot().accounts[W.acct.sid].keys[0].secret), 'the secret is never logged');
});

// Cross-checks the provider layer's pure signatures against the official libraries, on inputs
// generated at random: X-Twilio-Signature with twilio's getExpectedTwilioSignature and
// validateRequest, svix with svix's Webhook, and the Voice access token with twilio's AccessToken
// (byte for byte) and jsonwebtoken's verify.  The C side is unit_test_twilio_sig --oracle (one JSON
// request per line on stdin, one answer per line on stdout).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { test, before, after } from 'node:test';
import jwt from 'jsonwebtoken';
import { Webhook } from 'svix';
import twilio from 'twilio';
import webhooks from 'twilio/lib/webhooks/webhooks.js';

const { getExpectedTwilioSignature, validateRequest } = webhooks;
const BUILD = process.env.SWITCHBOARD_BUILD_DIR;
if (!BUILD) throw new Error('SWITCHBOARD_BUILD_DIR is not set (run the test through ctest)');

let oracle;
let lines;
const pending = [];

before(() => {
  oracle = spawn(path.join(BUILD, 'unit_test_twilio_sig'), ['--oracle'], { stdio: ['pipe', 'pipe', 'inherit'] });
  lines = createInterface({ input: oracle.stdout });
  lines.on('line', (l) => pending.shift()(JSON.parse(l)));
});

after(() => {
  oracle.stdin.end();
});

const ask = (req) =>
  new Promise((resolve) => {
    pending.push(resolve);
    oracle.stdin.write(JSON.stringify(req) + '\n');
  });

// Random strings over an alphabet that exercises form encoding and sorting: ASCII letters of both
// cases, digits, form metacharacters, spaces, accents, characters beyond U+FFFF and U+E000..U+FFFF.
const ALPHABET = [
  ...'abcABC019_-.~',
  ...' &=+%?/#:@',
  'é', 'ß', '中', '\uFFFD', '\uE000', '😀', '👋', '𝄞',
];
function rstr(min, max) {
  const n = randomInt(min, max + 1);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

// Params as the node library takes them (repeated names as arrays) and as a body Twilio would post.
function randomParams() {
  const names = [];
  const n = randomInt(0, 12);
  for (let i = 0; i < n; i++) names.push(randomInt(4) === 0 && names.length ? names[randomInt(names.length)] : rstr(1, 8));
  const pairs = names.map((k) => [k, randomInt(5) === 0 ? '' : rstr(0, 20)]);
  const params = {};
  for (const [k, v] of pairs) {
    if (k in params) params[k] = [].concat(params[k], v);
    else params[k] = v;
  }
  return { params, body: new URLSearchParams(pairs).toString() };
}

const URLS = [
  'https://sb.example.com/webhooks/twilio/messaging',
  'https://sb.example.com:443/webhooks/twilio/voice?workspace=abc&x=1',
  'http://127.0.0.1:8080/webhooks/twilio/messaging/status',
  'https://sb.example.com:8443/webhooks/twilio/voice/status?a=%20b',
  'http://[::1]:8080/webhooks/twilio/voice',
];

test('X-Twilio-Signature agrees with twilio.getExpectedTwilioSignature and validateRequest', async () => {
  for (let i = 0; i < 400; i++) {
    const token = randomBytes(16).toString('hex');
    const url = URLS[i % URLS.length];
    const { params, body } = randomParams();
    const sig = getExpectedTwilioSignature(token, url, params);
    const c = await ask({ op: 'twilio_compute', token, url, body });
    assert.equal(c.sig, sig, `compute ${url} ${body}`);
    const ok = await ask({ op: 'twilio_check', token, url, body, sig });
    assert.equal(ok.valid, true, `check ${url} ${body}`);
    // What the library accepts for a signature made over the other port form, we accept too.
    const other = url.replace(/^(https?:\/\/[^/?#]*?)(:\d+)?(?=[/?#]|$)/, (m, h, p) =>
      p ? h : h + (url.startsWith('https') ? ':443' : ':80'),
    );
    const sig2 = getExpectedTwilioSignature(token, other, params);
    assert.equal(validateRequest(token, sig2, url, params), true);
    assert.equal((await ask({ op: 'twilio_check', token, url, body, sig: sig2 })).valid, true, `port ${other}`);
    // And a wrong token, or one more parameter, is refused by both.
    const bad = getExpectedTwilioSignature(token + 'x', url, params);
    assert.equal((await ask({ op: 'twilio_check', token, url, body, sig: bad })).valid, false);
    const more = body + (body ? '&' : '') + 'Extra=1';
    assert.equal((await ask({ op: 'twilio_check', token, url, body: more, sig })).valid, false);
  }
});

test('svix signatures agree with svix.Webhook', async () => {
  for (let i = 0; i < 200; i++) {
    const secret = 'whsec_' + randomBytes(randomInt(16, 40)).toString('base64');
    const wh = new Webhook(secret);
    const id = 'msg_' + randomBytes(12).toString('base64url');
    const ts = randomInt(1_600_000_000, 2_000_000_000);
    const body = JSON.stringify({ type: 'email.delivered', data: { email_id: rstr(0, 30) } });
    const sig = wh.sign(id, new Date(ts * 1000), body);
    const sigs = randomInt(2) ? sig : `v1,${randomBytes(32).toString('base64')} ${sig}`;
    const now = ts + randomInt(-300, 301);
    assert.equal((await ask({ op: 'svix', secret, id, ts: String(ts), sigs, body, now })).rc, 'OK');
    // svix's own verify agrees (it reads the clock, so only for a timestamp near now).
    const fresh = Math.floor(Date.now() / 1000);
    const sigNow = wh.sign(id, new Date(fresh * 1000), body);
    wh.verify(body, { 'svix-id': id, 'svix-timestamp': String(fresh), 'svix-signature': sigNow });
    assert.equal(
      (await ask({ op: 'svix', secret, id, ts: String(fresh), sigs: sigNow, body, now: fresh })).rc,
      'OK',
    );
    assert.equal((await ask({ op: 'svix', secret, id, ts: String(ts), sigs, body: body + ' ', now })).rc, 'SB_EPERM');
    assert.equal((await ask({ op: 'svix', secret, id, ts: String(ts), sigs, body, now: ts + 301 })).rc, 'SB_ETIMEOUT');
  }
});

test('Voice access tokens are byte-identical to twilio.jwt.AccessToken and verify with jsonwebtoken', async () => {
  const { AccessToken } = twilio.jwt;
  const realNow = Date.now;
  try {
    for (let i = 0; i < 200; i++) {
      const account = 'AC' + randomBytes(16).toString('hex');
      const key = 'SK' + randomBytes(16).toString('hex');
      const app = 'AP' + randomBytes(16).toString('hex');
      const secret = randomBytes(16).toString('hex');
      // JSON escaping must match JSON.stringify's, control characters included.
      const identity = rstr(1, 30) + ['"', '\\', '\n', '\b', '\f', '\u0001', '\u007f', '/'][randomInt(8)];
      const now = randomInt(1_600_000_000, 2_000_000_000);
      const incoming = randomInt(2) === 1;
      const ttl = randomInt(2) ? 3600 : randomInt(60, 86400);
      Date.now = () => now * 1000;
      const t = new AccessToken(account, key, secret, { identity, ttl });
      t.addGrant(new AccessToken.VoiceGrant({ incomingAllow: incoming, outgoingApplicationSid: app }));
      const expected = t.toJwt();
      Date.now = realNow;
      const got = await ask({
        op: 'token', account_sid: account, key_sid: key, secret, identity, app_sid: app, incoming, now, ttl,
      });
      assert.equal(got.token, expected, `identity ${JSON.stringify(identity)}`);
      const claims = jwt.verify(got.token, secret, { algorithms: ['HS256'], clockTimestamp: now + 1 });
      assert.equal(claims.iss, key);
      assert.equal(claims.sub, account);
      assert.equal(claims.exp, now + ttl);
      assert.equal(claims.grants.identity, identity);
      assert.equal(claims.grants.voice.outgoing.application_sid, app);
      assert.throws(() => jwt.verify(got.token, secret + 'x', { algorithms: ['HS256'], clockTimestamp: now }));
    }
  } finally {
    Date.now = realNow;
  }
});

// Set-up for the messaging end-to-end tests, on api_support.mjs: the fake Twilio/Resend server, the real server
// pointed at it, a workspace with Twilio configured through the API, and webhooks signed with the
// official libraries (twilio's getExpectedTwilioSignature, svix's Webhook).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import webhooks from 'twilio/lib/webhooks/webhooks.js';
import { Webhook } from 'svix';
import { startFakeProvider } from '../fake_provider/server.mjs';
import { Client, createDb, dropDb, eventually, sql, startServer, workspace } from './api_support.mjs';

export { Client, createDb, dropDb, eventually, sql, startServer, workspace };
const { getExpectedTwilioSignature } = webhooks;

// The URL Twilio is told to call: signatures are computed over it (SPEC §7), whatever port the
// server really listens on.
export const PUBLIC_URL = 'https://switchboard.example.com';

// A fake provider and a server using it.  Resolves to {fake, srv, db, env, restart()}: restart()
// starts a new server on the same database and fake (after stop() or kill() of the old one).
export async function startAll(dbName, { env = {}, threads = 2 } = {}) {
  const fake = await startFakeProvider();
  const db = createDb(dbName);
  const fullEnv = {
    SWITCHBOARD_TWILIO_API_BASE: fake.url,
    SWITCHBOARD_RESEND_API_BASE: fake.url,
    SWITCHBOARD_PUBLIC_URL: PUBLIC_URL,
    SWITCHBOARD_MASTER_KEY: randomBytes(32).toString('hex'),
    ...env,
  };
  const all = { fake, db, env: fullEnv };
  all.srv = await startServer({ db, threads, env: fullEnv });
  all.restart = async (extra = {}) => {
    all.srv = await startServer({ db, threads, env: { ...fullEnv, ...extra } });
    return all.srv;
  };
  return all;
}

export async function stopAll({ fake, srv }, dbName) {
  const code = await srv?.stop();
  await fake?.close();
  dropDb(dbName);
  return code;
}

// A workspace with a fake Twilio account of n numbers configured through PUT .../twilio.
// Resolves to {ws, owner, acct, config}.
export async function twilioWorkspace(srv, fake, { numbers = 2 } = {}) {
  const { ws, owner } = await workspace(srv.url);
  const acct = fake.addAccount({ numbers });
  const r = await owner.client.put(`/v1/workspaces/${ws.id}/twilio`, { account_sid: acct.sid, auth_token: acct.token });
  if (r.status !== 200) throw new Error(`twilio set-up failed: ${r.status} ${r.text}`);
  return { ws, owner, acct, config: r.json };
}

let sidSeq = 0;
export const newSid = (prefix = 'SM') => prefix + randomBytes(12).toString('hex') + String(++sidSeq).padStart(8, '0');

// Posts a Twilio webhook, signed as Twilio signs it (unless sign is false or a string to send).
// params: an object, or [name, value] pairs (repeated names allowed).
export async function postTwilio(srv, path, params, { token, sign = true, query = '' } = {}) {
  const pairs = Array.isArray(params) ? params : Object.entries(params);
  const body = new URLSearchParams(pairs).toString();
  const url = PUBLIC_URL + path + query;
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (sign === true) {
    const obj = {};
    for (const [k, v] of pairs) {
      if (k in obj) obj[k] = [].concat(obj[k], v);
      else obj[k] = v;
    }
    headers['x-twilio-signature'] = getExpectedTwilioSignature(token, url, obj);
  } else if (typeof sign === 'string') {
    headers['x-twilio-signature'] = sign;
  }
  const res = await fetch(srv.url + path + query, { method: 'POST', headers, body });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

// An inbound SMS's parameters as Twilio sends them.
export function inboundParams(acct, { from, to = acct.numbers[0].phone_number, body = 'Hello', sid = newSid() } = {}) {
  return {
    ToCountry: 'US',
    ToState: 'CA',
    SmsMessageSid: sid,
    NumMedia: '0',
    ToCity: '',
    FromZip: '',
    SmsSid: sid,
    FromState: 'CA',
    SmsStatus: 'received',
    FromCity: 'SAN FRANCISCO',
    Body: body,
    FromCountry: 'US',
    To: to,
    MessagingServiceSid: '',
    ToZip: '',
    NumSegments: '1',
    MessageSid: sid,
    AccountSid: acct.sid,
    From: from,
    ApiVersion: '2010-04-01',
  };
}

// Events of a workspace, decoded by the server's own export (type and payload), in order.
export function countEvents(db, where) {
  return Number(sql(db, `SELECT count(*) FROM events WHERE ${where}`));
}

// Signs a Resend (svix) delivery of event with secret.
export function svixHeaders(secret, body, { id = 'msg_' + randomBytes(8).toString('hex'), at = new Date() } = {}) {
  const wh = new Webhook(secret);
  const signature = wh.sign(id, at, body);
  return { 'svix-id': id, 'svix-timestamp': String(Math.floor(at.getTime() / 1000)), 'svix-signature': signature };
}

// The workspace's events of the given types, decoded by `switchboard events export`:
// [{position, stream, type, version, data, metadata, ...}].
export function exportEvents(db, { workspace, types, stream } = {}) {
  const args = ['events', 'export', '--format', 'jsonl'];
  if (workspace) args.push('--workspace', workspace);
  if (types) args.push('--type', [].concat(types).join(','));
  if (stream) args.push('--stream', stream);
  const out = execFileSync(process.env.SWITCHBOARD_BIN, args, {
    encoding: 'utf8',
    env: { ...process.env, SWITCHBOARD_DATABASE_URL: db, SWITCHBOARD_LOG: 'error' },
    maxBuffer: 256 * 1024 * 1024,
  });
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

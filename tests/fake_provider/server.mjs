// A loopback stand-in for Twilio's and Resend's REST APIs, for tests.  Node built-ins only.
//
// It answers the calls Switchboard makes (SPEC §8) with Twilio- and Resend-shaped JSON, keeps the
// resources it creates (messages, calls, API keys, TwiML apps, phone numbers) per account, records
// every request (method, path, query, headers, raw body, parsed form or JSON, credentials), and can
// be told to misbehave: the next N requests matching a method and path answer a given status (500,
// 429 with Retry-After, ...), hang, drop the connection, or wait before answering.
//
// Use it in-process (import { startFakeProvider }) or as a process:
//   node tests/fake_provider/server.mjs [--port N] [--host H]
// which prints one JSON line {"url": ..., "port": ...} on stdout once listening and exits on
// SIGTERM/SIGINT or when stdin closes.  The admin API (not recorded) is under /__admin:
//   GET    /__admin/requests[?path=P&method=M]  -> {requests: [...]}
//   DELETE /__admin/requests
//   POST   /__admin/faults {method?, path? | pathPrefix?, times=1, apply?, action: "status"|"hang"|"drop"|
//          "delay", status?, body?, headers?, delayMs?, bodyBytes?}  -> {id}
//   DELETE /__admin/faults
//   POST   /__admin/accounts {sid?, token?, numbers?: count | ["+1555..."]}  -> the account
//   POST   /__admin/resend {keys: ["re_..."]}   (without it any bearer key is accepted)
//   GET    /__admin/state  -> accounts with their resources
//   POST   /__admin/reset
// Accounts nobody registered are created on first use and accept any non-empty auth token;
// a registered account demands its token (or one of its API keys), as Twilio does.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const API = '/2010-04-01';
const hex = (n) => randomBytes(n).toString('hex');
export const newSid = (prefix) => prefix + hex(16);
const rfc2822 = (d = new Date()) => d.toUTCString().replace('GMT', '+0000');

function twilioError(status, code, message) {
  return {
    status,
    body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
  };
}

function parseForm(body) {
  const pairs = [];
  for (const [k, v] of new URLSearchParams(body)) pairs.push([k, v]);
  return pairs;
}

const first = (pairs, name) => {
  const p = pairs.find(([k]) => k === name);
  return p ? p[1] : undefined;
};
const all = (pairs, name) => pairs.filter(([k]) => k === name).map(([, v]) => v);

function nationalFormat(e164) {
  const d = e164.replace(/^\+1/, '');
  return d.length === 10 ? `(${d.slice(0, 3)}) ${d.slice(3, 6)}-${d.slice(6)}` : e164;
}

class State {
  constructor() {
    this.reset();
  }

  reset() {
    this.requests = [];
    this.faults = [];
    this.accounts = new Map();
    this.resendKeys = null;
    this.resendIdem = new Map();
    this.emails = [];
    this.seq = 0;
    this.faultSeq = 0;
    this.numberSeq = 0;
  }

  account(sid, token, register = false) {
    let a = this.accounts.get(sid);
    if (!a) {
      a = {
        sid,
        token: token ?? null,
        registered: register,
        created: rfc2822(),
        numbers: [],
        apps: new Map(),
        keys: new Map(),
        messages: new Map(),
        calls: new Map(),
      };
      this.accounts.set(sid, a);
    } else if (register) {
      a.token = token ?? a.token;
      a.registered = true;
    }
    return a;
  }

  addNumber(a, phone) {
    const sid = newSid('PN');
    const n = {
      sid,
      account_sid: a.sid,
      friendly_name: nationalFormat(phone),
      phone_number: phone,
      voice_url: null,
      voice_method: 'POST',
      voice_application_sid: null,
      sms_url: '',
      sms_method: 'POST',
      sms_application_sid: '',
      status_callback: '',
      status_callback_method: 'POST',
      capabilities: { voice: true, sms: true, mms: true, fax: false },
      api_version: '2010-04-01',
      date_created: rfc2822(),
      date_updated: rfc2822(),
      uri: `${API}/Accounts/${a.sid}/IncomingPhoneNumbers/${sid}.json`,
    };
    a.numbers.push(n);
    return n;
  }

  snapshot() {
    const out = {};
    for (const [sid, a] of this.accounts) {
      out[sid] = {
        sid,
        registered: a.registered,
        numbers: a.numbers,
        apps: [...a.apps.values()],
        keys: [...a.keys.values()].map(({ secret, ...k }) => ({ ...k, secret })),
        messages: [...a.messages.values()],
        calls: [...a.calls.values()],
      };
    }
    return { accounts: out, emails: this.emails };
  }

  takeFault(method, path) {
    for (const f of this.faults) {
      if (f.times <= 0) continue;
      if (f.method && f.method !== method) continue;
      if (f.path && f.path !== path) continue;
      if (f.pathPrefix && !path.startsWith(f.pathPrefix)) continue;
      f.times -= 1;
      return f;
    }
    return null;
  }
}

// ---- Twilio ---------------------------------------------------------------------------------------

function basicAuth(headers) {
  const h = headers.authorization || '';
  const m = /^Basic\s+(.+)$/i.exec(h);
  if (!m) return null;
  const s = Buffer.from(m[1], 'base64').toString('utf8');
  const i = s.indexOf(':');
  return i < 0 ? null : { user: s.slice(0, i), pass: s.slice(i + 1) };
}

function authorise(state, sid, creds) {
  if (!creds || !creds.user || !creds.pass) return false;
  const a = state.account(sid);
  if (creds.user === sid) {
    if (a.token === null) {
      if (a.registered) return false;
      return true; // unregistered accounts take any token
    }
    return creds.pass === a.token;
  }
  const key = a.keys.get(creds.user);
  return !!key && key.secret === creds.pass;
}

function page(list, key, basePath, query) {
  const size = Math.min(Math.max(parseInt(query.get('PageSize') || '50', 10) || 50, 1), 1000);
  const pageNo = Math.max(parseInt(query.get('Page') || '0', 10) || 0, 0);
  const start = pageNo * size;
  const items = list.slice(start, start + size);
  const uri = (p) => `${basePath}?PageSize=${size}&Page=${p}` + (p > 0 ? `&PageToken=PA${hex(8)}` : '');
  return {
    [key]: items,
    end: start + items.length - 1,
    first_page_uri: `${basePath}?PageSize=${size}&Page=0`,
    next_page_uri: start + size < list.length ? uri(pageNo + 1) : null,
    page: pageNo,
    page_size: size,
    previous_page_uri: pageNo > 0 ? uri(pageNo - 1) : null,
    start,
    uri: uri(pageNo),
  };
}

const E164 = /^(whatsapp:)?\+[1-9]\d{6,14}$/;

function twilio(state, rec, segs, query) {
  // segs: ['2010-04-01', 'Accounts', AC..., ...rest], or [..., 'AC....json'] for the account itself
  const accountOnly = segs.length === 3 && segs[2].endsWith('.json');
  const sid = accountOnly ? segs[2].slice(0, -5) : segs[2];
  const rest = segs.slice(3);
  const notFound = () => twilioError(404, 20404, `The requested resource ${rec.path} was not found`);
  if (!/^AC[0-9a-fA-F]{32}$/.test(sid)) return notFound();
  if (!authorise(state, sid, rec.auth)) {
    const e = twilioError(401, 20003, 'Authenticate');
    e.headers = { 'WWW-Authenticate': 'Basic realm="Twilio API"' };
    return e;
  }
  const acct = state.account(sid);
  const f = rec.form || [];
  const base = `${API}/Accounts/${sid}`;
  const m = rec.method;
  const now = rfc2822();

  if (accountOnly) {
    if (m !== 'GET') return twilioError(405, 20004, 'Method not allowed');
    return {
      status: 200,
      body: {
        sid,
        friendly_name: 'My first Twilio account',
        status: 'active',
        type: 'Full',
        owner_account_sid: sid,
        date_created: acct.created,
        date_updated: now,
        uri: `${API}/Accounts/${sid}.json`,
      },
    };
  }

  const [res, sub] = rest;
  if (res === 'Messages.json' && m === 'POST') {
    const to = first(f, 'To'),
      from = first(f, 'From'),
      mss = first(f, 'MessagingServiceSid'),
      body = first(f, 'Body');
    const media = all(f, 'MediaUrl');
    if (!to) return twilioError(400, 21604, "A 'To' phone number is required.");
    if (!from && !mss) return twilioError(400, 21603, "A 'From' phone number is required.");
    if (!body && media.length === 0) return twilioError(400, 21602, 'Message body is required.');
    if (!E164.test(to)) return twilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (media.length > 10) return twilioError(400, 21623, 'Number of media files exceeds allowed limit');
    const msid = newSid(media.length ? 'MM' : 'SM');
    const msg = {
      account_sid: sid,
      api_version: '2010-04-01',
      body: body || '',
      date_created: now,
      date_sent: null,
      date_updated: now,
      direction: 'outbound-api',
      error_code: null,
      error_message: null,
      from: from || null,
      messaging_service_sid: mss || null,
      num_media: String(media.length),
      num_segments: '1',
      price: null,
      price_unit: 'USD',
      sid: msid,
      status: mss && !from ? 'accepted' : 'queued',
      subresource_uris: { media: `${base}/Messages/${msid}/Media.json` },
      to,
      uri: `${base}/Messages/${msid}.json`,
    };
    acct.messages.set(msid, { ...msg, media_urls: media, status_callback: first(f, 'StatusCallback') || null });
    return { status: 201, body: msg };
  }

  if (res === 'Messages.json' && m === 'GET') {
    // Newest first, as Twilio lists them; To, From and DateSent> (a date, inclusive) filter.
    let list = [...acct.messages.values()].reverse();
    const to = query.get('To'),
      from = query.get('From'),
      since = query.get('DateSent>');
    if (to) list = list.filter((x) => x.to === to);
    if (from) list = list.filter((x) => x.from === from);
    if (since) list = list.filter((x) => new Date(x.date_created) >= new Date(`${since}T00:00:00Z`));
    const pub = list.map(({ media_urls, status_callback, ...rest }) => rest);
    return { status: 200, body: page(pub, 'messages', `${base}/Messages.json`, query) };
  }

  if (res === 'Calls.json' && m === 'POST') {
    const to = first(f, 'To'),
      from = first(f, 'From');
    if (!to) return twilioError(400, 21201, 'No \'To\' number is specified');
    if (!from) return twilioError(400, 21213, 'No \'From\' number is specified');
    if (!first(f, 'Url') && !first(f, 'Twiml') && !first(f, 'ApplicationSid'))
      return twilioError(400, 21205, 'Url parameter is required.');
    const csid = newSid('CA');
    const call = {
      sid: csid,
      account_sid: sid,
      to,
      to_formatted: to,
      from,
      from_formatted: from,
      status: 'queued',
      direction: 'outbound-api',
      api_version: '2010-04-01',
      date_created: now,
      date_updated: now,
      start_time: null,
      end_time: null,
      duration: null,
      parent_call_sid: null,
      uri: `${base}/Calls/${csid}.json`,
    };
    acct.calls.set(csid, {
      ...call,
      url: first(f, 'Url') || null,
      twiml: first(f, 'Twiml') || null,
      status_callback: first(f, 'StatusCallback') || null,
      status_callback_events: all(f, 'StatusCallbackEvent'),
    });
    return { status: 201, body: call };
  }

  if (res === 'Calls' && sub && sub.endsWith('.json') && rest.length === 2) {
    const c = acct.calls.get(sub.slice(0, -5));
    if (!c) return notFound();
    if (m === 'POST') {
      const st = first(f, 'Status');
      if (st === 'completed' || st === 'canceled') c.status = st;
      else if (first(f, 'Twiml') || first(f, 'Url')) {
        c.twiml = first(f, 'Twiml') || null;
        c.url = first(f, 'Url') || null;
        c.status = 'in-progress';
      } else return twilioError(400, 21218, 'Invalid ApplicationSid');
      c.date_updated = now;
    }
    const { twiml, url, status_callback, status_callback_events, ...pub } = c;
    return { status: 200, body: pub };
  }

  if (res === 'Keys.json' && m === 'POST') {
    const ksid = newSid('SK');
    const key = {
      sid: ksid,
      friendly_name: first(f, 'FriendlyName') || null,
      date_created: now,
      date_updated: now,
      secret: randomBytes(24).toString('base64url').slice(0, 32),
    };
    acct.keys.set(ksid, key);
    return { status: 201, body: key };
  }

  if (res === 'Keys' && sub && sub.endsWith('.json') && rest.length === 2) {
    const ksid = sub.slice(0, -5);
    const key = acct.keys.get(ksid);
    if (!key) return notFound();
    if (m === 'DELETE') {
      acct.keys.delete(ksid);
      return { status: 204, body: null };
    }
    const { secret, ...pub } = key;
    return { status: 200, body: pub };
  }

  if (res === 'Applications.json') {
    if (m === 'POST') {
      const name = first(f, 'FriendlyName');
      if (!name) return twilioError(400, 21401, 'FriendlyName is required');
      const apsid = newSid('AP');
      const app = {
        sid: apsid,
        account_sid: sid,
        friendly_name: name,
        api_version: '2010-04-01',
        voice_url: first(f, 'VoiceUrl') || null,
        voice_method: first(f, 'VoiceMethod') || 'POST',
        voice_fallback_url: null,
        status_callback: first(f, 'StatusCallback') || null,
        status_callback_method: first(f, 'StatusCallbackMethod') || 'POST',
        sms_url: first(f, 'SmsUrl') || null,
        date_created: now,
        date_updated: now,
        uri: `${base}/Applications/${apsid}.json`,
      };
      acct.apps.set(apsid, app);
      return { status: 201, body: app };
    }
    if (m === 'GET') {
      let list = [...acct.apps.values()];
      const name = query.get('FriendlyName');
      if (name !== null) list = list.filter((x) => x.friendly_name === name);
      return { status: 200, body: page(list, 'applications', `${base}/Applications.json`, query) };
    }
  }

  if (res === 'Applications' && sub && sub.endsWith('.json') && rest.length === 2) {
    const apsid = sub.slice(0, -5);
    const app = acct.apps.get(apsid);
    if (!app) return notFound();
    if (m === 'DELETE') {
      acct.apps.delete(apsid);
      return { status: 204, body: null };
    }
    if (m === 'POST') {
      const map = {
        FriendlyName: 'friendly_name',
        VoiceUrl: 'voice_url',
        VoiceMethod: 'voice_method',
        StatusCallback: 'status_callback',
        StatusCallbackMethod: 'status_callback_method',
        SmsUrl: 'sms_url',
      };
      for (const [k, v] of f) if (map[k]) app[map[k]] = v;
      app.date_updated = now;
    }
    return { status: 200, body: app };
  }

  if (res === 'IncomingPhoneNumbers.json' && m === 'GET') {
    return {
      status: 200,
      body: page(acct.numbers, 'incoming_phone_numbers', `${base}/IncomingPhoneNumbers.json`, query),
    };
  }

  if (res === 'IncomingPhoneNumbers' && sub && sub.endsWith('.json') && rest.length === 2) {
    const n = acct.numbers.find((x) => x.sid === sub.slice(0, -5));
    if (!n) return notFound();
    if (m === 'POST') {
      const map = {
        VoiceApplicationSid: 'voice_application_sid',
        VoiceUrl: 'voice_url',
        VoiceMethod: 'voice_method',
        SmsUrl: 'sms_url',
        SmsMethod: 'sms_method',
        StatusCallback: 'status_callback',
        StatusCallbackMethod: 'status_callback_method',
        FriendlyName: 'friendly_name',
      };
      const vas = first(f, 'VoiceApplicationSid');
      if (vas && !acct.apps.has(vas)) return twilioError(400, 21606, 'VoiceApplicationSid is not valid');
      for (const [k, v] of f) if (map[k]) n[map[k]] = v;
      n.date_updated = now;
    }
    return { status: 200, body: n };
  }
  return notFound();
}

// ---- Resend ---------------------------------------------------------------------------------------

function resendError(status, name, message) {
  return { status, body: { statusCode: status, message, name } };
}

function resend(state, rec) {
  const auth = rec.headers.authorization || '';
  const m = /^Bearer\s+(\S+)$/.exec(auth);
  if (!m) return resendError(401, 'missing_api_key', 'Missing API key in the authorization header');
  if (state.resendKeys && !state.resendKeys.includes(m[1]))
    return resendError(403, 'invalid_api_key', 'API key is invalid');
  if (rec.method !== 'POST') return resendError(405, 'method_not_allowed', 'Method not allowed');
  const j = rec.json;
  if (!j || typeof j !== 'object') return resendError(422, 'validation_error', 'Invalid JSON body');
  for (const k of ['from', 'to', 'subject'])
    if (!j[k] || (Array.isArray(j[k]) && j[k].length === 0))
      return resendError(422, 'validation_error', `Missing \`${k}\` field.`);
  if (!j.text && !j.html && !j.react)
    return resendError(422, 'validation_error', 'Missing `html` or `text` field.');
  const key = rec.headers['idempotency-key'];
  const hash = createHash('sha256').update(rec.body).digest('hex');
  if (key) {
    const prev = state.resendIdem.get(key);
    if (prev) {
      if (prev.hash !== hash)
        return resendError(
          409,
          'invalid_idempotent_request',
          'Same idempotency key used with a different request payload. Change your idempotency key or payload.',
        );
      return { status: 200, body: { id: prev.id } };
    }
  }
  const id = randomUUID();
  if (key) state.resendIdem.set(key, { hash, id });
  state.emails.push({ id, ...j, idempotency_key: key || null });
  return { status: 200, body: { id } };
}

// ---- the server -----------------------------------------------------------------------------------

function send(res, { status, body, headers = {} }) {
  const h = { ...headers };
  let data = '';
  if (body !== null && body !== undefined) {
    data = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
      h['Content-Type'] = typeof body === 'string' ? 'text/plain' : 'application/json; charset=utf-8';
  }
  h['Content-Length'] = Buffer.byteLength(data);
  res.writeHead(status, h);
  res.end(data);
}

function admin(state, rec, query, res) {
  const p = rec.path;
  const j = rec.json || {};
  if (p === '/__admin/requests' && rec.method === 'GET') {
    const list = state.requests.filter(
      (r) => (!query.get('path') || r.path === query.get('path')) && (!query.get('method') || r.method === query.get('method')),
    );
    return send(res, { status: 200, body: { requests: list } });
  }
  if (p === '/__admin/requests' && rec.method === 'DELETE') {
    state.requests = [];
    return send(res, { status: 204 });
  }
  if (p === '/__admin/faults' && rec.method === 'POST') {
    const id = ++state.faultSeq;
    state.faults.push({ id, times: 1, action: 'status', status: 500, ...j });
    return send(res, { status: 201, body: { id } });
  }
  if (p === '/__admin/faults' && rec.method === 'DELETE') {
    state.faults = [];
    return send(res, { status: 204 });
  }
  if (p === '/__admin/accounts' && rec.method === 'POST') {
    const a = addAccount(state, j);
    return send(res, { status: 201, body: { sid: a.sid, token: a.token, numbers: a.numbers } });
  }
  if (p === '/__admin/resend' && rec.method === 'POST') {
    state.resendKeys = Array.isArray(j.keys) ? j.keys : null;
    return send(res, { status: 204 });
  }
  if (p === '/__admin/state' && rec.method === 'GET') return send(res, { status: 200, body: state.snapshot() });
  if (p === '/__admin/reset' && rec.method === 'POST') {
    state.reset();
    return send(res, { status: 204 });
  }
  return send(res, { status: 404, body: { error: 'no such admin endpoint' } });
}

function addAccount(state, { sid, token, numbers } = {}) {
  const a = state.account(sid || newSid('AC'), token || hex(16), true);
  if (typeof numbers === 'number') {
    // Unique across the fake's accounts, and valid North American numbers (+1 555 2xx xxxx).
    for (let i = 0; i < numbers; i++) state.addNumber(a, `+1555${2000000 + state.numberSeq++}`);
  } else if (Array.isArray(numbers)) {
    for (const n of numbers) state.addNumber(a, n);
  }
  return a;
}

function handle(state, req, res, body, sockets) {
  const u = new URL(req.url, 'http://fake');
  const rec = {
    seq: 0,
    time: new Date().toISOString(),
    method: req.method,
    path: u.pathname,
    query: u.search.slice(1),
    headers: req.headers,
    body,
    form: null,
    json: null,
    auth: basicAuth(req.headers),
    fault: null,
  };
  const ct = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (ct === 'application/x-www-form-urlencoded') rec.form = parseForm(body);
  else if (ct === 'application/json' && body.length) {
    try {
      rec.json = JSON.parse(body);
    } catch {
      rec.json = undefined;
    }
  }
  if (u.pathname.startsWith('/__admin/')) return admin(state, rec, u.searchParams, res);

  rec.seq = ++state.seq;
  state.requests.push(rec);
  const compute = () => {
    const segs = u.pathname.split('/').filter(Boolean);
    if (segs[0] === '2010-04-01' && segs[1] === 'Accounts' && segs.length >= 3)
      return twilio(state, rec, segs, u.searchParams);
    if (u.pathname === '/emails') return resend(state, rec);
    return { status: 404, body: { code: 20404, message: 'Not found', status: 404 } };
  };
  const answer = () => send(res, compute());

  const f = state.takeFault(req.method, u.pathname);
  if (!f) return answer();
  rec.fault = { id: f.id, action: f.action, status: f.status };
  // apply: the request takes effect (a message is created...) and then the fault happens instead of
  // the answer: what a crash or a lost connection after the provider acted looks like.
  if (f.apply) rec.applied = compute();
  switch (f.action) {
    case 'hang':
      return; // never answer; the socket is destroyed when the server closes
    case 'drop':
      return req.socket.destroy();
    case 'delay':
      return setTimeout(answer, f.delayMs || 1000);
    default: {
      let b = f.body;
      if (f.bodyBytes) b = 'x'.repeat(f.bodyBytes);
      else if (b === undefined)
        b = u.pathname === '/emails'
          ? { statusCode: f.status, message: 'Internal server error', name: 'internal_server_error' }
          : { code: 20500, message: 'Internal Server Error', more_info: 'https://www.twilio.com/docs/errors/20500', status: f.status };
      return send(res, { status: f.status, body: b, headers: f.headers || {} });
    }
  }
}

// Starts the fake on host:port (port 0: any free port).  Resolves to a handle with the state's
// helpers and close().
export async function startFakeProvider({ port = 0, host = '127.0.0.1' } = {}) {
  const state = new State();
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handle(state, req, res, Buffer.concat(chunks).toString('utf8'), sockets));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const url = `http://${host}:${addr.port}`;
  return {
    url,
    port: addr.port,
    state,
    requests: (filter = {}) =>
      state.requests.filter((r) => (!filter.path || r.path === filter.path) && (!filter.method || r.method === filter.method)),
    clearRequests: () => {
      state.requests = [];
    },
    fault: (spec) => {
      const id = ++state.faultSeq;
      state.faults.push({ id, times: 1, action: 'status', status: 500, ...spec });
      return id;
    },
    clearFaults: () => {
      state.faults = [];
    },
    addAccount: (spec) => addAccount(state, spec),
    snapshot: () => state.snapshot(),
    reset: () => state.reset(),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
  };
  const fake = await startFakeProvider({ port: Number(arg('--port', '0')), host: arg('--host', '127.0.0.1') });
  process.stdout.write(JSON.stringify({ url: fake.url, port: fake.port }) + '\n');
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A parent that dies without signalling us closes our stdin: do not outlive it.
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

// docs/api/openapi.json matches the server: every route the server registers is documented and
// every documented operation is served; and every documented operation, called on the running
// server with its documented example, answers a documented 2xx status with the documented shape.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client, SRC, createDb, dropDb, signup, startServer } from './api_support.mjs';
import { startFakeProvider } from '../fake_provider/server.mjs';

const DB_NAME = 'e2e_api_openapi';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options'];
let db, srv, spec, fake;

before(async () => {
  spec = JSON.parse(fs.readFileSync(path.join(SRC(), 'docs/api/openapi.json'), 'utf8'));
  db = createDb(DB_NAME);
  // Operations that talk to Twilio or Resend (the Twilio set-up) talk to the fake.
  fake = await startFakeProvider();
  // The account the Twilio set-up's example names, with one number (for the voice number routes).
  fake.addAccount({ sid: 'AC0123456789abcdef0123456789abcdef', token: '0123456789abcdef0123456789abcdef', numbers: ['+15552000001'] });
  srv = await startServer({ db, env: { SWITCHBOARD_TWILIO_API_BASE: fake.url, SWITCHBOARD_RESEND_API_BASE: fake.url } });
});

after(async () => {
  const code = await srv?.stop();
  await fake?.close();
  dropDb(DB_NAME);
  assert.equal(code, 0, 'server exits cleanly');
});

const shape = (p) => p.replace(/\{[^}]+\}/g, '{}');

// "METHOD /shape" for every sb_router_add in the sources.
function serverRoutes() {
  const out = new Set();
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.c') && !f.endsWith('router.c')) {
        const text = fs.readFileSync(f, 'utf8');
        for (const m of text.matchAll(/sb_router_add\(\s*[^,]+,\s*"([A-Z]+)",\s*"([^"]+)"/g)) out.add(`${m[1]} ${shape(m[2])}`);
      }
    }
  };
  walk(path.join(SRC(), 'src'));
  return out;
}

function documented() {
  const out = [];
  for (const [p, item] of Object.entries(spec.paths))
    for (const m of METHODS) if (item[m]) out.push({ method: m.toUpperCase(), path: p, op: item[m], item });
  return out;
}

const resolve = (s) => {
  while (s && s.$ref) {
    const parts = s.$ref.replace('#/', '').split('/');
    s = parts.reduce((o, k) => o[k], spec);
  }
  return s;
};

// Checks value against the parts of a schema the API relies on: type, required, items.
function conforms(value, schema, where) {
  schema = resolve(schema);
  if (!schema) return;
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const t = value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
  if (types.length) assert.ok(types.includes(t) || (t === 'integer' && types.includes('number')), `${where}: ${t} is not ${types}`);
  if (t === 'object') {
    for (const k of schema.required ?? []) assert.ok(k in value, `${where}: missing ${k}`);
    for (const [k, sub] of Object.entries(schema.properties ?? {})) if (k in value) conforms(value[k], sub, `${where}.${k}`);
  }
  if (t === 'array' && schema.items) value.forEach((v, i) => conforms(v, schema.items, `${where}[${i}]`));
}

test('the document is OpenAPI 3 and every schema reference resolves', () => {
  assert.match(spec.openapi, /^3\./);
  assert.ok(spec.info.title && spec.info.version);
  const refs = JSON.stringify(spec).match(/"\$ref":"[^"]+"/g) ?? [];
  for (const r of refs) assert.ok(resolve(JSON.parse(`{${r}}`)), r);
  for (const { method, path: p, op } of documented()) {
    assert.ok(op.summary, `${method} ${p}: summary`);
    assert.ok(Object.keys(op.responses).length > 0, `${method} ${p}: responses`);
    for (const name of p.matchAll(/\{([^}]+)\}/g)) {
      const ps = [...(documented().find((d) => d.path === p).item.parameters ?? []), ...(op.parameters ?? [])].map(resolve);
      assert.ok(ps.some((x) => x.in === 'path' && x.name === name[1]), `${method} ${p}: path parameter ${name[1]} documented`);
    }
  }
});

test('every route the server registers is documented, and nothing else is', () => {
  const served = serverRoutes();
  const docs = new Set(documented().map((d) => `${d.method} ${shape(d.path)}`));
  const undocumented = [...served].filter((r) => !docs.has(r));
  const unserved = [...docs].filter((r) => !served.has(r));
  assert.deepEqual(undocumented, [], 'routes the server has that the document lacks');
  assert.deepEqual(unserved, [], 'documented routes the server does not register');
  assert.ok(served.size >= 30, `${served.size} routes`);
});

test('every documented operation answers a documented 2xx with the documented shape', async () => {
  // Fixtures for the path parameters, and the users the examples name.
  const owner = await signup(srv.url, { name: 'Olivia Owner' });
  const ben = await signup(srv.url, { email: 'ben@example.com', name: 'Ben' });
  const c = owner.client;
  const ws = (await c.post('/v1/workspaces', { name: 'Docs' })).json;
  const contact = (await c.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Fixture' })).json;
  const note = (await c.post(`/v1/workspaces/${ws.id}/contacts/${contact.id}/notes`, { body: 'fixture' })).json;
  await c.put(`/v1/workspaces/${ws.id}/auto-replies/hours`, { reply: 'fixture' });
  const later = new Date(Date.now() + 3600 * 1000).toISOString();
  const message = (await c.post(`/v1/workspaces/${ws.id}/contacts/${contact.id}/messages`, { channel: 'chat', body: 'fixture', send_at: later })).json;
  const values = { ws: ws.id, id: contact.id, note_id: note.id, user_id: ben.user.id, name: 'Qualified', keyword: 'hours', mid: message.id, number: '+15552000001' };
  const fill = (p) => p.replace(/\{([^}]+)\}/g, (_, n) => values[n]);

  const ops = documented();
  const ordered = [...ops.filter((o) => o.method !== 'DELETE'), ...ops.filter((o) => o.method === 'DELETE').reverse()];
  for (const { method, path: p, op } of ordered) {
    const where = `${method} ${p}`;
    // Requests a provider signs (webhooks), the chat visitor's, which need a visitor's session
    // token, and call control's, which need a live call (x-live-call), are called by the messaging
    // and calls tests instead.
    if (op['x-signed'] || op['x-visitor-token'] || op['x-live-call']) continue;
    const example = op.requestBody?.content?.['application/json']?.example;
    let client = c;
    if (p === '/v1/auth/logout') {
      // A session of its own, so the rest keep theirs.
      const s = await new Client(srv.url).post('/v1/auth/login', { email: owner.email, password: owner.password });
      client = c.as(s.json.token);
    }
    if (p === '/v1/me' && method === 'PATCH') {
      // An account of its own, whose password the example gives, so the rest keep their e-mails.
      client = (await signup(srv.url, { password: example.password })).client;
    }
    if (p.endsWith('/events/stream')) {
      const ctl = new AbortController();
      const res = await fetch(srv.url + fill(p), { headers: { authorization: `Bearer ${owner.token}` }, signal: ctl.signal });
      assert.equal(res.status, 200, where);
      assert.ok(op.responses['200'].content['text/event-stream'], where);
      ctl.abort();
      continue;
    }
    const r = await client.req(method, fill(p), example !== undefined ? { body: example } : {});
    assert.ok(r.status >= 200 && r.status < 300, `${where}: ${r.status} ${r.text}`);
    const doc = op.responses[String(r.status)];
    assert.ok(doc, `${where}: ${r.status} is not documented`);
    const media = doc.content && Object.keys(doc.content)[0];
    if (media === 'application/json') {
      assert.match(r.headers.get('content-type'), /^application\/json/, where);
      conforms(r.json, doc.content[media].schema, where);
    } else if (media) {
      assert.ok(r.headers.get('content-type').startsWith(media.split(';')[0]), where);
    } else {
      assert.equal(r.text, '', `${where}: no body`);
    }
    // Documented headers are always sent, except those marked required: false (Content-Encoding:
    // only to clients that accept it, and only for a cached page).
    for (const [h, d] of Object.entries(doc.headers ?? {})) if (d.required !== false) assert.ok(r.headers.get(h), `${where}: header ${h}`);
  }
});

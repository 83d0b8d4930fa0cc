// Workspaces, members and roles, pipeline stages and auto-replies, end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, eventCount, eventually, serverFixture, signup, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_api_workspaces';
const fx = serverFixture(DB_NAME);

test('create a workspace: 201, the creator is its owner, ETag and Location', async () => {
  const u = await signup(fx.srv.url, { name: 'Olivia Owner' });
  const r = await u.client.post('/v1/workspaces', { name: 'Plumbing Co', default_country: 'GB' });
  assert.equal(r.status, 201);
  assert.equal(r.json.name, 'Plumbing Co');
  assert.equal(r.json.default_country, 'GB');
  assert.equal(r.json.owner_id, u.user.id);
  assert.equal(r.json.role, 'owner');
  assert.match(r.json.created_at, /Z$/);
  assert.equal(r.headers.get('location'), `/v1/workspaces/${r.json.id}`);
  assert.match(r.headers.get('etag'), /^"\d+"$/);
  const g = await u.client.get(`/v1/workspaces/${r.json.id}`);
  assert.equal(g.status, 200);
  assert.deepEqual(g.json, r.json);
  assert.equal(g.headers.get('etag'), r.headers.get('etag'));
  const m = await u.client.get(`/v1/workspaces/${r.json.id}/members`);
  assert.deepEqual(m.json, {
    items: [{ id: u.user.id, user_id: u.user.id, email: u.email, name: 'Olivia Owner', role: 'owner' }],
    next_cursor: null,
  });
  // Defaults and validation
  const d = await u.client.post('/v1/workspaces', { name: 'Default' });
  assert.equal(d.json.default_country, 'US');
  for (const [body, field] of [
    [{}, 'name'],
    [{ name: '' }, 'name'],
    [{ name: 'x'.repeat(201) }, 'name'],
    [{ name: 'A', default_country: 'XX' }, 'default_country'],
    [{ name: 'A', default_country: 'usa' }, 'default_country'],
    [{ name: 'A', colour: 'red' }, 'colour'],
    [{ name: 7 }, 'name'],
  ]) {
    const bad = await u.client.post('/v1/workspaces', body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.field, field);
  }
});

test('PATCH a workspace: admin only, If-Match makes it conditional', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const g = await owner.client.get(`/v1/workspaces/${ws.id}`);
  const etag = g.headers.get('etag');
  const stale = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Never' }, { headers: { 'if-match': '"1"' } });
  assert.equal(stale.status, 412);
  assert.equal(stale.json.error.code, 'precondition_failed');
  const weak = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Never' }, { headers: { 'if-match': `W/${etag}` } });
  assert.equal(weak.status, 412);
  const ok = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Renamed', default_country: 'DE' }, { headers: { 'if-match': etag } });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.name, 'Renamed');
  assert.equal(ok.json.default_country, 'DE');
  assert.notEqual(ok.headers.get('etag'), etag);
  const star = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Star' }, { headers: { 'if-match': '*' } });
  assert.equal(star.status, 200);
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}`)).json.name, 'Star');
});

test('members: add by e-mail, roles decide what each may do, anyone may leave', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const admin = await signup(fx.srv.url, { name: 'Adam Admin' });
  const agent = await signup(fx.srv.url, { name: 'Ana Agent' });
  const outsider = await signup(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}`;

  // Before they are members, the workspace does not exist for them.
  assert.equal((await agent.client.get(base)).status, 404);

  let r = await owner.client.post(`${base}/members`, { email: admin.email.toUpperCase(), role: 'admin' });
  assert.equal(r.status, 201);
  assert.deepEqual(r.json, { id: admin.user.id, user_id: admin.user.id, email: admin.email, name: 'Adam Admin', role: 'admin' });
  r = await owner.client.post(`${base}/members`, { email: admin.email, role: 'admin' });
  assert.equal(r.status, 200, 'a repeat is not an error');
  r = await owner.client.post(`${base}/members`, { email: admin.email, role: 'agent' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'already_member');
  r = await admin.client.post(`${base}/members`, { email: agent.email, role: 'agent' });
  assert.equal(r.status, 201);
  r = await owner.client.post(`${base}/members`, { email: 'nobody-here@example.com', role: 'agent' });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.field, 'email');
  r = await owner.client.post(`${base}/members`, { email: outsider.email, role: 'boss' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'role');

  // Agents read but do not manage.
  assert.equal((await agent.client.get(base)).json.role, 'agent');
  r = await agent.client.post(`${base}/members`, { email: outsider.email, role: 'agent' });
  assert.equal(r.status, 403);
  assert.equal((await agent.client.post(`${base}/pipeline/stages`, { name: 'Lead' })).status, 403);
  assert.equal((await agent.client.patch(base, { name: 'Mine' })).status, 403);
  // Admins cannot make owners; owners can.
  r = await admin.client.patch(`${base}/members/${agent.user.id}`, { role: 'owner' });
  assert.equal(r.status, 403);
  r = await owner.client.patch(`${base}/members/${agent.user.id}`, { role: 'admin' });
  assert.equal(r.status, 200);
  assert.equal(r.json.role, 'admin');
  // The new role counts at once for its holder (the server caches each caller's role per workspace).
  assert.equal((await agent.client.get(base)).json.role, 'admin');
  // The last owner cannot leave; an agent can.
  r = await owner.client.del(`${base}/members/${owner.user.id}`);
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'last_owner');
  r = await agent.client.del(`${base}/members/${agent.user.id}`);
  assert.equal(r.status, 204);
  assert.equal((await agent.client.get(base)).status, 404, 'gone at once: membership is read from the actor');
  r = await owner.client.del(`${base}/members/${outsider.user.id}`);
  assert.equal(r.status, 404);
});

test('pipeline stages and auto-replies', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}`;
  assert.deepEqual((await owner.client.get(`${base}/pipeline/stages`)).json, { items: [], next_cursor: null });
  assert.equal((await owner.client.post(`${base}/pipeline/stages`, { name: 'Lead' })).status, 201);
  assert.equal((await owner.client.post(`${base}/pipeline/stages`, { name: 'Won' })).status, 201);
  const mid = await owner.client.post(`${base}/pipeline/stages`, { name: 'Qualified', position: 1 });
  assert.deepEqual(mid.json, { id: 'Qualified', name: 'Qualified', position: 1 });
  const dup = await owner.client.post(`${base}/pipeline/stages`, { name: 'lead' });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error.code, 'stage_exists');
  assert.equal((await owner.client.post(`${base}/pipeline/stages`, { name: 'X', position: 9 })).status, 400);
  assert.equal((await owner.client.post(`${base}/pipeline/stages`, { name: 'X', position: -1 })).status, 400);
  assert.deepEqual(
    (await owner.client.get(`${base}/pipeline/stages`)).json.items.map((s) => s.name),
    ['Lead', 'Qualified', 'Won'],
  );
  assert.equal((await owner.client.del(`${base}/pipeline/stages/Qualified`)).status, 204);
  assert.equal((await owner.client.del(`${base}/pipeline/stages/Qualified`)).status, 404);

  let r = await owner.client.put(`${base}/auto-replies/HOURS`, { reply: 'We open at 9.' });
  assert.equal(r.status, 201);
  assert.deepEqual(r.json, { id: 'hours', keyword: 'hours', reply: 'We open at 9.' });
  r = await owner.client.put(`${base}/auto-replies/hours`, { reply: 'We open at 8.' });
  assert.equal(r.status, 200);
  assert.deepEqual((await owner.client.get(`${base}/auto-replies/hours`)).json, { id: 'hours', keyword: 'hours', reply: 'We open at 8.' });
  assert.equal((await owner.client.put(`${base}/auto-replies/stop`, { reply: 'no' })).json.error.code, 'reserved_keyword');
  assert.equal((await owner.client.put(`${base}/auto-replies/two%20words`, { reply: 'no' })).status, 400);
  assert.equal((await owner.client.put(`${base}/auto-replies/x`, { reply: '' })).status, 400);
  assert.deepEqual((await owner.client.get(`${base}/auto-replies`)).json.items, [{ id: 'hours', keyword: 'hours', reply: 'We open at 8.' }]);
  assert.equal((await owner.client.del(`${base}/auto-replies/hours`)).status, 204);
  assert.equal((await owner.client.get(`${base}/auto-replies/hours`)).status, 404);
  assert.equal((await owner.client.del(`${base}/auto-replies/hours`)).status, 404);
});

test('Idempotency-Key on POST /v1/workspaces: the same key answers the first response, one set of events', async () => {
  const u = await signup(fx.srv.url);
  const before = eventCount(fx.db);
  const key = { 'idempotency-key': 'create-acme-1' };
  const first = await u.client.post('/v1/workspaces', { name: 'Once' }, { headers: key });
  assert.equal(first.status, 201);
  const again = await u.client.post('/v1/workspaces', { name: 'Once' }, { headers: key });
  assert.equal(again.status, 201);
  assert.equal(again.text, first.text);
  assert.equal(again.headers.get('etag'), first.headers.get('etag'));
  assert.equal(again.headers.get('location'), first.headers.get('location'));
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(eventCount(fx.db), before + 2, 'WorkspaceCreated and MemberAdded, once');
  const other = await u.client.post('/v1/workspaces', { name: 'Different' }, { headers: key });
  assert.equal(other.status, 422);
  assert.equal(other.json.error.code, 'idempotency_key_reused');
  // Keys are per user: another user's same key is a new request.
  const v = await signup(fx.srv.url);
  const theirs = await v.client.post('/v1/workspaces', { name: 'Once' }, { headers: key });
  assert.equal(theirs.status, 201);
  assert.notEqual(theirs.json.id, first.json.id);
  // A failed request releases its key: fixing the body and retrying with it works.
  const bad = await u.client.post('/v1/workspaces', { name: '' }, { headers: { 'idempotency-key': 'k2' } });
  assert.equal(bad.status, 400);
  const good = await u.client.post('/v1/workspaces', { name: '' }, { headers: { 'idempotency-key': 'k2' } });
  assert.equal(good.status, 400);
  // Concurrent requests with one key: one runs, the rest replay it or are told it is in flight.
  const before2 = eventCount(fx.db);
  const racers = await Promise.all(
    Array.from({ length: 6 }, () => u.client.post('/v1/workspaces', { name: 'Raced' }, { headers: { 'idempotency-key': 'race' } })),
  );
  const ids = new Set(racers.filter((r) => r.status === 201).map((r) => r.json.id));
  assert.equal(ids.size, 1);
  for (const r of racers) assert.ok(r.status === 201 || (r.status === 409 && r.json.error.code === 'idempotency_in_progress'));
  assert.equal(eventCount(fx.db), before2 + 2);
  assert.equal((await u.client.post('/v1/workspaces', { name: 'x' }, { headers: { 'idempotency-key': '' } })).status, 400);
  assert.equal((await u.client.post('/v1/workspaces', { name: 'x' }, { headers: { 'idempotency-key': 'k'.repeat(256) } })).status, 400);
});

test('the request id is returned and becomes the events\' correlation id', async () => {
  const u = await signup(fx.srv.url);
  const r = await u.client.post('/v1/workspaces', { name: 'Traced' }, { headers: { 'x-request-id': 'trace-abc-123' } });
  assert.equal(r.status, 201);
  assert.equal(r.headers.get('x-request-id'), 'trace-abc-123');
  const ev = await u.client.get(`/v1/workspaces/${r.json.id}/events`);
  assert.equal(ev.status, 200);
  assert.equal(ev.json.items.length, 2);
  for (const e of ev.json.items) {
    assert.equal(e.metadata.correlation_id, 'trace-abc-123');
    assert.equal(e.metadata.request_id, 'trace-abc-123');
    assert.equal(e.metadata.user_id, u.user.id);
    assert.equal(e.metadata.source, 'api');
  }
  const gen = await u.client.get('/v1/me');
  assert.match(gen.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
});

test('the events page: position order, after= and limit=, stable while events arrive', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}`;
  for (let i = 0; i < 5; i++) await owner.client.post(`${base}/pipeline/stages`, { name: `S${i}` });
  const all = (await owner.client.get(`${base}/events?limit=1000`)).json;
  assert.equal(all.items.length, 7);
  assert.equal(all.next_cursor, null);
  const positions = all.items.map((e) => e.position);
  assert.deepEqual([...positions].sort((a, b) => a - b), positions);
  const p1 = (await owner.client.get(`${base}/events?limit=3`)).json;
  assert.deepEqual(p1.items.map((e) => e.position), positions.slice(0, 3));
  assert.equal(p1.next_cursor, String(positions[2]));
  await owner.client.post(`${base}/pipeline/stages`, { name: 'Late' });
  const p2 = (await owner.client.get(`${base}/events?limit=3&after=${p1.next_cursor}`)).json;
  assert.deepEqual(p2.items.map((e) => e.position), positions.slice(3, 6));
  const p3 = (await owner.client.get(`${base}/events?limit=3&after=${p2.next_cursor}`)).json;
  assert.equal(p3.items.length, 2);
  assert.equal(p3.items[1].type, 'PipelineStageAdded');
  assert.equal(p3.items[1].data.name, 'Late');
  for (const q of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=abc', 'limit=', 'after=1e3']) {
    const r = await owner.client.get(`${base}/events?${q}`);
    assert.equal(r.status, 400, q);
  }
});

test('GET /metrics speaks Prometheus text', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}`)).status, 200);
  // Loops sample their database connections once a second: wait for both to be seen up.
  const r = await eventually(async () => {
    const m = await new Client(fx.srv.url).get('/metrics');
    return /^switchboard_db_connections\{role="query"\} 2$/m.test(m.text) && m;
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.match(r.text, /^switchboard_http_requests_total\{method="POST",route="\/v1\/workspaces",status="201"\} \d+$/m);
  assert.match(r.text, /^switchboard_http_request_duration_seconds_bucket\{method="GET",route="\/v1\/workspaces\/\{ws\}",le="\+Inf"\} \d+$/m);
  assert.match(r.text, /^switchboard_events_appended_total \d+$/m);
  assert.match(r.text, /^switchboard_actors_active \d+$/m);
  assert.match(r.text, /^switchboard_db_connections\{role="query"\} 2$/m);
  assert.match(r.text, /^switchboard_auth_signups_total [1-9]\d*$/m);
  assert.match(r.text, /^switchboard_sse_clients \d+$/m);
  assert.match(r.text, /^switchboard_projection_lag_events\{projection="notes"\} \d+$/m);
  assert.match(r.text, /^switchboard_projections_active 1$/m);
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    assert.match(line, /^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? [0-9.e+-]+$/, line);
  }
});

test('every created resource answers with an id (SPEC §5): members, stages and auto-replies too', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const ben = await signup(fx.srv.url);
  const m = await owner.client.post(`/v1/workspaces/${ws.id}/members`, { email: ben.email, role: 'agent' });
  assert.equal(m.status, 201, m.text);
  assert.equal(m.json.id, ben.user.id);
  assert.equal(m.json.user_id, ben.user.id);
  const members = (await owner.client.get(`/v1/workspaces/${ws.id}/members`)).json.items;
  for (const x of members) assert.equal(x.id, x.user_id);
  const st = await owner.client.post(`/v1/workspaces/${ws.id}/pipeline/stages`, { name: 'Quoted' });
  assert.equal(st.status, 201);
  assert.equal(st.json.id, 'Quoted');
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}/pipeline/stages`)).json.items[0].id, 'Quoted');
  const ar = await owner.client.put(`/v1/workspaces/${ws.id}/auto-replies/HOURS`, { reply: 'nine to five' });
  assert.equal(ar.status, 201);
  assert.equal(ar.json.id, 'hours');
  assert.equal(ar.json.keyword, 'hours');
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}/auto-replies`)).json.items[0].id, 'hours');
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}/auto-replies/${ar.json.id}`)).status, 200);
});

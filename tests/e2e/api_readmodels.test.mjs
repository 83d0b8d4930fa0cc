// The endpoints that read the projections' read models: the caller's workspaces, the contact list
// and search, a contact's notes, analytics.  Read models follow the log, so each test waits
// (eventually) for what it wrote to arrive before asserting on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, serverFixture, signup, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_api_readmodels';
const fx = serverFixture(DB_NAME);

// Every page of a list, following next_cursor.
async function allPages(client, path, limit) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await client.get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(r.status, 200, r.text);
    items.push(...r.json.items);
    if (r.json.items.length > limit) throw new Error('page larger than limit');
    cursor = r.json.next_cursor;
    if (!cursor) return items;
  }
  throw new Error('too many pages');
}

test('GET /v1/workspaces lists the caller\'s workspaces with their role', async () => {
  const u = await signup(fx.srv.url);
  const a = (await u.client.post('/v1/workspaces', { name: 'Alpha' })).json;
  const other = await workspace(fx.srv.url, 'Theirs');
  await other.owner.client.post(`/v1/workspaces/${other.ws.id}/members`, { email: u.email, role: 'agent' });
  const r = await eventually(async () => {
    const x = await u.client.get('/v1/workspaces');
    return x.json.items.length === 2 && x;
  });
  assert.deepEqual(r.json.items.map((w) => [w.id, w.name, w.role]).sort(), [[a.id, 'Alpha', 'owner'], [other.ws.id, 'Theirs', 'agent']].sort());
  assert.equal(r.json.next_cursor, null);
  const stranger = await signup(fx.srv.url);
  assert.deepEqual((await stranger.client.get('/v1/workspaces')).json, { items: [], next_cursor: null });
});

test('contacts: newest first, every contact once across pages, stable while new ones arrive', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const made = [];
  for (let i = 0; i < 25; i++) made.push((await owner.client.post(base, { name: `Person ${String(i).padStart(2, '0')}` })).json.id);
  await eventually(async () => (await owner.client.get(`${base}?limit=200`)).json.items.length === 25);
  const first = await owner.client.get(`${base}?limit=10`);
  assert.deepEqual(first.json.items.map((c) => c.id), made.slice(-10).reverse());
  // New contacts arrive while we page: they sort before the cursor and never shift later pages.
  for (let i = 0; i < 5; i++) await owner.client.post(base, { name: `Late ${i}` });
  const rest = [];
  let cursor = first.json.next_cursor;
  while (cursor) {
    const r = await owner.client.get(`${base}?limit=10&cursor=${encodeURIComponent(cursor)}`);
    rest.push(...r.json.items.map((c) => c.id));
    cursor = r.json.next_cursor;
  }
  assert.deepEqual([...first.json.items.map((c) => c.id), ...rest], [...made].reverse());
  for (const q of ['limit=0', 'limit=201', 'cursor=garbage', 'cursor=', 'assignee=me', `q=${'x'.repeat(201)}`, 'stage=']) {
    assert.equal((await owner.client.get(`${base}?${q}`)).status, 400, q);
  }
});

test('contacts: search by name, phone in any format, e-mail; filter by stage, tag and assignee', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const agent = await signup(fx.srv.url);
  await owner.client.post(`/v1/workspaces/${ws.id}/members`, { email: agent.email, role: 'agent' });
  await owner.client.post(`/v1/workspaces/${ws.id}/pipeline/stages`, { name: 'Lead' });
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const bea = (await owner.client.post(base, { name: 'Bea Lima', phone: '+14155550100', tags: ['VIP'], stage: 'Lead' })).json;
  const cal = (await owner.client.post(base, { name: 'Cal Jones', email: 'cal@example.com', assignee_id: agent.user.id })).json;
  const pct = (await owner.client.post(base, { name: '100% Real_Name' })).json;
  await eventually(async () => (await owner.client.get(base)).json.items.length === 3);
  const ids = async (q) => (await owner.client.get(`${base}?${q}`)).json.items.map((c) => c.id).sort();
  assert.deepEqual(await ids('q=lima'), [bea.id]);
  assert.deepEqual(await ids('q=BEA'), [bea.id]);
  assert.deepEqual(await ids('q=4155550100'), [bea.id]);
  assert.deepEqual(await ids(`q=${encodeURIComponent('(415) 555-0100')}`), [bea.id]);
  assert.deepEqual(await ids('q=%2B1415'), [bea.id]);
  assert.deepEqual(await ids('q=cal%40example'), [cal.id]);
  assert.deepEqual(await ids('q=%25'), [pct.id], 'a % in q is a literal %');
  assert.deepEqual(await ids('q=_'), [pct.id], 'an _ in q is a literal _');
  assert.deepEqual(await ids('q=nobody'), []);
  assert.deepEqual(await ids('stage=lead'), [bea.id]);
  assert.deepEqual(await ids('tag=vip'), [bea.id]);
  assert.deepEqual(await ids(`assignee=${agent.user.id}`), [cal.id]);
  assert.deepEqual(await ids(`q=a&assignee=${agent.user.id}`), [cal.id]);
  assert.deepEqual(await ids('q=a&stage=Lead&tag=vip'), [bea.id]);
  const listed = (await owner.client.get(`${base}?q=lima`)).json.items[0];
  assert.deepEqual(listed, (await owner.client.get(`${base}/${bea.id}`)).json, 'the list shows the same contact object');
  // Deleted contacts leave the list.
  await owner.client.del(`${base}/${cal.id}`);
  await eventually(async () => (await ids('q=cal')).length === 0);
});

test('notes: oldest first in pages; private notes listed only for their author', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const agent = await signup(fx.srv.url);
  await owner.client.post(`/v1/workspaces/${ws.id}/members`, { email: agent.email, role: 'agent' });
  const c = (await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Noted' })).json;
  const path = `/v1/workspaces/${ws.id}/contacts/${c.id}/notes`;
  // Right after creation the contact may not be in the read model yet: still no 404.
  assert.equal((await owner.client.get(path)).status, 200);
  const mine = [];
  for (let i = 0; i < 7; i++) mine.push((await owner.client.post(path, { body: `note ${i}`, private: i % 3 === 0 })).json);
  const theirs = (await agent.client.post(path, { body: 'agent note' })).json;
  // Each loop's thread cache applies note events as they commit, ahead of the notes read model
  // (applied in batches): another loop answering from the read model may lag it for a moment, so
  // wait until paging from scratch sees every note.
  let ownerView;
  await eventually(async () => (ownerView = await allPages(owner.client, path, 3)).length === 8);
  assert.deepEqual(ownerView.map((n) => n.id), [...mine.map((n) => n.id), theirs.id]);
  let agentView;
  const agentExpected = [...mine.filter((n) => !n.private).map((n) => n.id), theirs.id];
  await eventually(async () => (agentView = await allPages(agent.client, path, 2)).length === agentExpected.length);
  assert.deepEqual(agentView.map((n) => n.id), agentExpected);
  assert.ok(agentView.every((n) => n.private === false));
  assert.deepEqual(ownerView[1], { ...mine[1], edited_at: null });
  assert.equal((await owner.client.get(`/v1/workspaces/${ws.id}/contacts/00000000-0000-7000-8000-000000000001/notes`)).status, 404);
  assert.equal((await owner.client.get(`${path}?cursor=zzz`)).status, 400);
});

test('analytics: the report\'s shape, pipeline counts, and range validation', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}`;
  await owner.client.post(`${base}/pipeline/stages`, { name: 'Lead' });
  await owner.client.post(`${base}/pipeline/stages`, { name: 'Won' });
  for (const stage of ['Lead', 'Lead', 'Won', null]) await owner.client.post(`${base}/contacts`, { name: 'P', stage });
  const r = await eventually(async () => {
    const x = await owner.client.get(`${base}/analytics`);
    return x.json.pipeline.reduce((n, p) => n + p.contacts, 0) === 4 && x;
  });
  assert.deepEqual(r.json.pipeline, [
    { stage: 'Lead', contacts: 2 },
    { stage: 'Won', contacts: 1 },
    { stage: null, contacts: 1 },
  ]);
  assert.deepEqual(r.json.totals, { messages: 0, inbound: 0, outbound: 0, calls: 0 });
  assert.deepEqual(r.json.response_time_seconds, { average: null, median: null, p90: null, replies: 0 });
  assert.deepEqual(r.json.calls, { total: 0, answered: 0, missed: 0, average_duration_seconds: null, by_agent: [] });
  assert.deepEqual(r.json.messages_by_channel, {});
  const today = new Date().toISOString().slice(0, 10);
  const span = (Date.parse(r.json.to) - Date.parse(r.json.from)) / 86400000;
  assert.equal(span, 30);
  assert.ok(r.json.to > today, 'today is included');
  const ranged = await owner.client.get(`${base}/analytics?from=2026-01-01&to=2026-02-01T10:00:00Z`);
  assert.equal(ranged.status, 200);
  assert.equal(ranged.json.from, '2026-01-01');
  assert.equal(ranged.json.to, '2026-02-01');
  for (const q of ['from=yesterday', 'from=2026-02-01&to=2026-01-01', 'from=2020-01-01&to=2026-01-01', 'to=2026-13-01']) {
    assert.equal((await owner.client.get(`${base}/analytics?${q}`)).status, 400, q);
  }
});

test('a thread read again and again stays current: notes added, edited and deleted show on every loop', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const agent = await signup(fx.srv.url);
  await owner.client.post(`/v1/workspaces/${ws.id}/members`, { email: agent.email, role: 'agent' });
  const c = (await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Hot' })).json;
  const path = `/v1/workspaces/${ws.id}/contacts/${c.id}/notes`;
  const a = (await owner.client.post(path, { body: 'first' })).json;
  await eventually(async () => (await owner.client.get(path)).json.items.length === 1);
  // Many reads, over many connections, reach every loop and fill each one's cache.
  const views = async (client) => (await Promise.all(Array.from({ length: 12 }, () => client.get(path)))).map((r) => r.json);
  const same = (list, pred) => list.every(pred);
  assert.ok(same(await views(owner.client), (v) => v.items.length === 1));
  const b = (await owner.client.post(path, { body: 'second', private: true })).json;
  await eventually(async () => same(await views(owner.client), (v) => v.items.map((n) => n.id).join() === [a.id, b.id].join()));
  assert.ok(same(await views(agent.client), (v) => v.items.map((n) => n.id).join() === a.id), 'private stays private');
  await owner.client.patch(`${path}/${a.id}`, { body: 'first, edited' });
  await eventually(async () => same(await views(agent.client), (v) => v.items[0].body === 'first, edited' && v.items[0].edited_at));
  await owner.client.del(`${path}/${a.id}`);
  await eventually(async () => same(await views(owner.client), (v) => v.items.map((n) => n.id).join() === b.id));
  const metrics = await (await fetch(`${fx.srv.url}/metrics`)).text();
  assert.match(metrics, /^switchboard_thread_cache_hits_total [1-9]\d*$/m, 'the cache served some of these');
  // A deleted contact's thread is gone, cached or not.
  await owner.client.del(`/v1/workspaces/${ws.id}/contacts/${c.id}`);
  await eventually(async () => same(await views(owner.client), (v) => v === null || v.error?.code === 'contact_not_found'));
});

test('a thread longer than the cached window pages on from the database', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const c = (await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Chatty' })).json;
  const path = `/v1/workspaces/${ws.id}/contacts/${c.id}/notes`;
  const ids = [];
  for (let i = 0; i < 205; i++) ids.push((await owner.client.post(path, { body: `n${i}` })).json.id);
  await eventually(async () => (await owner.client.get(`${path}?limit=200`)).json.items.length === 200);
  const p1 = (await owner.client.get(`${path}?limit=200`)).json;
  const p1again = (await owner.client.get(`${path}?limit=200`)).json;
  assert.deepEqual(p1again, p1);
  const p2 = await eventually(async () => {
    const r = (await owner.client.get(`${path}?limit=200&cursor=${encodeURIComponent(p1.next_cursor)}`)).json;
    return r.items.length === 5 && r;
  });
  assert.deepEqual([...p1.items, ...p2.items].map((n) => n.id), ids);
  // A note added now belongs after the window: the cached first page does not change.
  await owner.client.post(path, { body: 'late' });
  assert.deepEqual((await owner.client.get(`${path}?limit=200`)).json.items.map((n) => n.id), ids.slice(0, 200));
});

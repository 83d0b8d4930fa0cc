// Contacts and notes end to end: phones in E.164 and unique per workspace (under concurrency
// too), ETag/If-Match, Idempotency-Key, notes with mentions and private notes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventCount, serverFixture, signup, sql, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_api_contacts';
const fx = serverFixture(DB_NAME);

test('create: 201 with the contact, phones in E.164 read in the workspace\'s country, ETag and Location', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  await owner.client.patch(`/v1/workspaces/${ws.id}`, { default_country: 'GB' });
  await owner.client.post(`/v1/workspaces/${ws.id}/pipeline/stages`, { name: 'Lead' });
  const r = await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, {
    name: 'Bea Lima',
    phone: '020 7946 0958',
    phones: ['+44 20 7946 0958', '+1 (415) 555-0100'],
    email: 'Bea@Example.com',
    tags: ['vip', 'VIP', 'north'],
    stage: 'lead',
    assignee_id: owner.user.id,
  });
  assert.equal(r.status, 201, r.text);
  const c = r.json;
  assert.match(c.id, /^[0-9a-f-]{36}$/);
  assert.equal(c.name, 'Bea Lima');
  assert.deepEqual(c.phones, ['+442079460958', '+14155550100']);
  assert.equal(c.phone, '+442079460958');
  assert.deepEqual(c.emails, ['bea@example.com']);
  assert.deepEqual(c.tags, ['vip', 'north']);
  assert.equal(c.stage, 'Lead');
  assert.equal(c.assignee_id, owner.user.id);
  assert.deepEqual(c.opted_out, []);
  assert.equal(r.headers.get('etag'), '"1"');
  assert.equal(r.headers.get('location'), `/v1/workspaces/${ws.id}/contacts/${c.id}`);
  const g = await owner.client.get(`/v1/workspaces/${ws.id}/contacts/${c.id}`);
  assert.equal(g.status, 200);
  assert.deepEqual(g.json, c);
  assert.equal(g.headers.get('etag'), '"1"');
});

test('create: validation names the field and stores nothing', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const before = eventCount(fx.db);
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const cases = [
    [{}, 400, 'required'],
    [{ name: '' }, 400, 'required'],
    [{ phone: 'call me' }, 400, 'invalid_phone', 'phone'],
    [{ phones: ['+1 415 555 0100', '12'] }, 400, 'invalid_phone', 'phones'],
    [{ phones: '+14155550100' }, 400, 'invalid', 'phones'],
    [{ email: 'bea at example' }, 400, 'invalid_email'],
    [{ name: 'B', tags: 'vip' }, 400, 'invalid', 'tags'],
    [{ name: 'B', tags: [1] }, 400, 'invalid', 'tags'],
    [{ name: 'B', stage: 'Nope' }, 400, 'unknown_stage'],
    [{ name: 'B', assignee_id: '00000000-0000-7000-8000-000000000009' }, 400, 'unknown_member'],
    [{ name: 'B', assignee_id: 'me' }, 400, 'invalid', 'assignee_id'],
    [{ name: 'B', nickname: 'Bee' }, 400, 'unknown_field', 'nickname'],
    [{ name: 'x'.repeat(201) }, 400, 'invalid', 'name'],
    [{ name: 'B', phones: Array.from({ length: 11 }, (_, i) => `+1415555${String(i).padStart(4, '0')}`) }, 400, 'invalid', 'phones'],
  ];
  for (const [body, status, code, field] of cases) {
    const r = await owner.client.post(base, body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.json.error.code, code, JSON.stringify(body));
    if (field) assert.equal(r.json.error.field, field, JSON.stringify(body));
  }
  assert.equal(eventCount(fx.db), before);
});

test('a phone number belongs to one contact per workspace, even when creates race', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const forms = ['+14155550123', '(415) 555-0123', '415.555.0123', '+1 415 555 0123', '1-415-555-0123', 'tel:+14155550123'];
  const results = await Promise.all(forms.map((phone, i) => owner.client.post(base, { name: `Racer ${i}`, phone })));
  const ok = results.filter((r) => r.status === 201);
  assert.equal(ok.length, 1, results.map((r) => r.status).join(','));
  for (const r of results.filter((x) => x.status !== 201)) {
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, 'phone_taken');
  }
  assert.equal(sql(fx.db, `SELECT count(*) FROM events WHERE type = 'ContactCreated' AND workspace_id = '${ws.id}'`), '1');
  // Another workspace may have a contact with the same number.
  const other = await workspace(fx.srv.url);
  assert.equal((await other.owner.client.post(`/v1/workspaces/${other.ws.id}/contacts`, { name: 'Same', phone: '+14155550123' })).status, 201);
  // Giving the number up frees it; deleting a contact frees its numbers.
  const holder = ok[0].json;
  const moved = await owner.client.patch(`${base}/${holder.id}`, { phones: ['+14155550124'] });
  assert.equal(moved.status, 200);
  assert.deepEqual(moved.json.phones, ['+14155550124']);
  const taker = await owner.client.post(base, { name: 'Taker', phone: '+14155550123' });
  assert.equal(taker.status, 201);
  assert.equal((await owner.client.patch(`${base}/${holder.id}`, { phone: '+14155550123' })).status, 409);
  assert.equal((await owner.client.del(`${base}/${taker.json.id}`)).status, 204);
  assert.equal((await owner.client.patch(`${base}/${holder.id}`, { phones: ['+14155550124', '+14155550123'] })).status, 200);
});

test('PATCH and DELETE with If-Match: 412 on a stale ETag, and the ETag moves with each change', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  await owner.client.post(`/v1/workspaces/${ws.id}/pipeline/stages`, { name: 'Lead' });
  await owner.client.post(`/v1/workspaces/${ws.id}/pipeline/stages`, { name: 'Won' });
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const c = (await owner.client.post(base, { name: 'Cal' })).json;
  let r = await owner.client.patch(`${base}/${c.id}`, { stage: 'Lead' }, { headers: { 'if-match': '"1"' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.stage, 'Lead');
  assert.equal(r.headers.get('etag'), '"2"');
  r = await owner.client.patch(`${base}/${c.id}`, { stage: 'Won' }, { headers: { 'if-match': '"1"' } });
  assert.equal(r.status, 412);
  assert.equal(r.headers.get('etag'), '"2"');
  r = await owner.client.patch(`${base}/${c.id}`, { stage: 'Won', name: 'Cal Q', tags: ['a'] }, { headers: { 'if-match': '"2"' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.stage, 'Won');
  assert.equal(r.json.name, 'Cal Q');
  r = await owner.client.patch(`${base}/${c.id}`, { stage: null });
  assert.equal(r.json.stage, null);
  r = await owner.client.patch(`${base}/${c.id}`, { name: '' });
  assert.equal(r.status, 400, 'a contact keeps a name, phone or e-mail');
  r = await owner.client.patch(`${base}/${c.id}`, { stage: 'Gone' });
  assert.equal(r.status, 400);
  const etag = (await owner.client.get(`${base}/${c.id}`)).headers.get('etag');
  assert.equal((await owner.client.del(`${base}/${c.id}`, { headers: { 'if-match': '"1"' } })).status, 412);
  assert.equal((await owner.client.del(`${base}/${c.id}`, { headers: { 'if-match': etag } })).status, 204);
  assert.equal((await owner.client.get(`${base}/${c.id}`)).status, 404);
  assert.equal((await owner.client.patch(`${base}/${c.id}`, { name: 'Back' })).status, 404);
  assert.equal((await owner.client.del(`${base}/${c.id}`)).status, 404);
});

test('If-Match lists and "*" (RFC 9110): any listed strong tag matches; weak and foreign tags never do', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const c = (await owner.client.post(base, { name: 'Lia' })).json;
  const url = `${base}/${c.id}`;
  const patch = (body, ifMatch) => owner.client.patch(url, body, { headers: { 'if-match': ifMatch } });
  // The contact is at version 1.
  let r = await patch({ name: 'Lia A' }, '"7", "1"');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('etag'), '"2"');
  r = await patch({ name: 'Lia B' }, '"1", "3"');
  assert.equal(r.status, 412);
  assert.equal(r.headers.get('etag'), '"2"');
  assert.equal(r.json.error.code, 'precondition_failed');
  // Weak tags and tags that are not ours never match, even listed with a stale one.
  r = await patch({ name: 'Lia B' }, 'W/"2", "abc", "1"');
  assert.equal(r.status, 412);
  // A tag's characters may include a comma; the list still parses.
  r = await patch({ name: 'Lia B' }, '"x,y" ,"2"');
  assert.equal(r.status, 200, r.text);
  r = await patch({ name: 'Lia C' }, '*');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('etag'), '"4"');
  // Malformed lists and lists naming too many versions change nothing.
  for (const bad of ['"4', '"4" x', ',', '"1","2","3","5","6","7","8","9","10"']) {
    r = await patch({ name: 'Never' }, bad);
    assert.equal(r.status, 412, `If-Match: ${bad}`);
  }
  assert.equal((await owner.client.get(url)).json.name, 'Lia C');
  // The same on a resource written by its actor directly (the workspace), and on DELETE.
  const w = await owner.client.get(`/v1/workspaces/${ws.id}`);
  const v = Number(JSON.parse(w.headers.get('etag')));
  r = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Listed' }, { headers: { 'if-match': `"${v + 5}", "${v}"` } });
  assert.equal(r.status, 200, r.text);
  r = await owner.client.patch(`/v1/workspaces/${ws.id}`, { name: 'Stale' }, { headers: { 'if-match': `"${v}", "${v + 5}"` } });
  assert.equal(r.status, 412);
  assert.equal((await owner.client.del(url, { headers: { 'if-match': '"1", "2"' } })).status, 412);
  assert.equal((await owner.client.del(url, { headers: { 'if-match': '"1", "4"' } })).status, 204);
  // "*" on a missing resource: 404, as without the condition (RFC 9110 §13.2.1).
  assert.equal((await owner.client.patch(url, { name: 'Gone' }, { headers: { 'if-match': '*' } })).status, 404);
});

test('Idempotency-Key on contact and note creation: one contact, one note, the same answers', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const before = eventCount(fx.db);
  const h = { headers: { 'idempotency-key': 'contact-1' } };
  const a = await owner.client.post(base, { name: 'Dee', phone: '+14155550177' }, h);
  const b = await owner.client.post(base, { name: 'Dee', phone: '+14155550177' }, h);
  assert.equal(a.status, 201);
  assert.equal(b.status, 201);
  assert.equal(b.text, a.text);
  assert.equal(b.headers.get('idempotent-replayed'), 'true');
  const n1 = await owner.client.post(`${base}/${a.json.id}/notes`, { body: 'called back' }, { headers: { 'idempotency-key': 'note-1' } });
  const n2 = await owner.client.post(`${base}/${a.json.id}/notes`, { body: 'called back' }, { headers: { 'idempotency-key': 'note-1' } });
  assert.equal(n1.status, 201);
  assert.equal(n2.text, n1.text);
  // ContactCreated, NoteAdded, and the phone's Claimed: once each.
  assert.equal(eventCount(fx.db), before + 3);
});

test('notes: mentions of members are recognised; only the author edits; a private note is the author\'s alone', async () => {
  const { ws, owner } = await workspace(fx.srv.url);
  const agent = await signup(fx.srv.url, { name: 'Ana Agent' });
  await owner.client.post(`/v1/workspaces/${ws.id}/members`, { email: agent.email, role: 'agent' });
  const base = `/v1/workspaces/${ws.id}/contacts`;
  const c = (await owner.client.post(base, { name: 'Eve' })).json;
  const handle = agent.email.split('@')[0];
  let r = await owner.client.post(`${base}/${c.id}/notes`, { body: `@${handle} please call @AnaAgent. Not @nobody.` });
  assert.equal(r.status, 201);
  assert.deepEqual(r.json.mentions, [agent.user.id]);
  assert.equal(r.json.author_id, owner.user.id);
  assert.equal(r.json.private, false);
  assert.equal(r.json.contact_id, c.id);
  assert.equal(r.headers.get('etag'), (await owner.client.get(`${base}/${c.id}`)).headers.get('etag'));
  const shared = r.json;
  r = await agent.client.patch(`${base}/${c.id}/notes/${shared.id}`, { body: 'mine now' });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'not_author');
  // A note's ETag is its contact's version, and If-Match on the note compares it.
  const noteTag = (await owner.client.get(`${base}/${c.id}`)).headers.get('etag');
  r = await owner.client.patch(`${base}/${c.id}/notes/${shared.id}`, { body: 'stale' }, { headers: { 'if-match': '"1"' } });
  assert.equal(r.status, 412);
  r = await owner.client.patch(`${base}/${c.id}/notes/${shared.id}`, { body: 'edited' }, { headers: { 'if-match': noteTag } });
  assert.equal(r.status, 200);
  assert.equal(r.json.body, 'edited');
  // The edited note answers in the same shape as the created one, with its creation time.
  assert.equal(r.json.created_at, shared.created_at);
  assert.match(r.json.edited_at, /Z$/);
  assert.equal(r.headers.get('etag'), `"${Number(JSON.parse(noteTag)) + 1}"`);
  assert.equal((await owner.client.get(`${base}/${c.id}`)).headers.get('etag'), r.headers.get('etag'));

  const priv = (await owner.client.post(`${base}/${c.id}/notes`, { body: 'between us', private: true })).json;
  assert.equal(priv.private, true);
  for (const [m, body] of [['PATCH', { body: 'x' }], ['DELETE', undefined]]) {
    r = await agent.client.req(m, `${base}/${c.id}/notes/${priv.id}`, { body });
    assert.equal(r.status, 404, `${m} of another's private note`);
    assert.equal(r.json.error.code, 'note_not_found');
  }
  assert.equal((await owner.client.del(`${base}/${c.id}/notes/${priv.id}`)).status, 204);
  assert.equal((await owner.client.del(`${base}/${c.id}/notes/${priv.id}`)).status, 404);
  for (const body of [{}, { body: '' }, { body: 'x'.repeat(10001) }, { body: 'x', private: 'yes' }, { body: 'x', pinned: true }]) {
    r = await owner.client.post(`${base}/${c.id}/notes`, body);
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  assert.equal((await owner.client.post(`${base}/00000000-0000-7000-8000-000000000001/notes`, { body: 'x' })).status, 404);
});

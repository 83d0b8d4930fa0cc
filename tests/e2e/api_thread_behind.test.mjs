// A contact's notes when the read models lag behind what a server has followed.  Two servers share
// one database; the first holds the projections lease, so the read models are its work.  Freezing
// it (SIGSTOP) freezes the read models while the second server goes on following the log: a
// contact deleted through the second server is still listed, with its notes, in the read models,
// and its thread must still answer 404 (the actor decides), not the read model's stale page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createDb, dropDb, eventually, sql, startServer, workspace } from './api_support.mjs';

const DB_NAME = 'e2e_api_thread_behind';
let db, first, second;

before(async () => {
  db = createDb(DB_NAME);
  first = await startServer({ db });
  // The second starts once the first holds the lease (it runs the read models from then on).
  await eventually(async () => first.log().includes('this process runs the projections'), { timeoutMs: 20000, what: 'the lease' });
  second = await startServer({ db });
  assert.ok(!second.log().includes('this process runs the projections'));
});

after(async () => {
  first?.signal('SIGCONT');
  const codes = [second ? await second.stop() : 0, first ? await first.stop() : 0];
  dropDb(DB_NAME);
  assert.deepEqual(codes, [0, 0], 'both servers exit cleanly');
});

test('a deleted contact answers 404 for its notes while the read models are frozen before the deletion', async () => {
  const { ws, owner } = await workspace(second.url);
  const c = (await owner.client.post(`/v1/workspaces/${ws.id}/contacts`, { name: 'Gone soon' })).json;
  const path = `/v1/workspaces/${ws.id}/contacts/${c.id}/notes`;
  const note = (await owner.client.post(path, { body: 'hello' })).json;
  // Listed, with its note, in the read models (applied by the first server).
  await eventually(async () => {
    const r = await owner.client.get(path);
    return r.status === 200 && r.json.items.length === 1 && r.json.items[0].id === note.id;
  });
  await eventually(async () => sql(db, `SELECT count(*) FROM contacts.contacts WHERE id = '${c.id}'`) === '1');
  first.signal('SIGSTOP');
  // Stopped: every thread of it (kill(2) returns before the signal has taken effect).  A thread's
  // state is the field after the command's parenthesis in /proc/PID/task/TID/stat.
  const state = (t) => readFileSync(`/proc/${first.pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  const stopped = () => readdirSync(`/proc/${first.pid}/task`).every((t) => state(t) === 'T');
  await eventually(async () => stopped(), { what: 'the first server stopped' });
  const del = await owner.client.del(`/v1/workspaces/${ws.id}/contacts/${c.id}`);
  assert.ok(del.status === 200 || del.status === 204, del.text);
  // The deletion is in the log; the read models still list the contact and its note.
  assert.equal(sql(db, `SELECT count(*) FROM events WHERE type = 'ContactDeleted' AND stream = 'contact-${c.id}'`), '1');
  // Many reads over many connections reach both of the second server's loops.
  const views = async () => Promise.all(Array.from({ length: 12 }, () => owner.client.get(path)));
  await eventually(async () => (await views()).every((r) => r.status === 404 && r.json.error.code === 'contact_not_found'),
    { what: 'every read answers 404' });
  assert.ok(!second.log().includes('this process runs the projections'), second.log().split('\n').filter((l) => l.includes('projections')).join('\n'));
  assert.equal(sql(db, `SELECT count(*) FROM contacts.contacts WHERE id = '${c.id}'`), '1', 'the read models were frozen throughout');
  first.signal('SIGCONT');
});

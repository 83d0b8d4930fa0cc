-- Scheduled messages still waiting for their time: what the scheduler reloads at start-up.
--
--   SELECT id, contact_id, send_at FROM scheduled.messages WHERE send_at <= $horizon ORDER BY send_at
--
-- A message leaves when it is dispatched (MessageQueued with queued_at), cancelled, fails at send
-- time, or its contact is deleted.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 1.6

CREATE TABLE messages (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id   uuid NOT NULL,
    channel      text NOT NULL,
    send_at      timestamptz NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX messages_contact ON messages (contact_id);

-- @on MessageScheduled
INSERT INTO messages (id, workspace_id, contact_id, channel, send_at, created_at)
VALUES (($7->>'message_id')::uuid, $5, right($2, 36)::uuid, $7->>'channel', ($7->>'send_at')::timestamptz,
        ($7->>'created_at')::timestamptz)
ON CONFLICT (id) DO NOTHING;

-- @batch MessageQueued
-- Every message is queued once, but only a dispatched scheduled one carries queued_at: one
-- statement per batch looks for those.
DELETE FROM messages m
 USING (SELECT unnest($3) AS type, unnest($7) AS payload) AS e
 WHERE e.type = 'MessageQueued' AND e.payload ? 'queued_at' AND m.id = (e.payload->>'message_id')::uuid;

-- @on MessageScheduleCancelled MessageFailed
DELETE FROM messages WHERE id = ($7->>'message_id')::uuid;

-- @on ContactDeleted
DELETE FROM messages WHERE contact_id = right($2, 36)::uuid;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX messages_send_at ON messages (send_at);

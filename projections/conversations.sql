-- Conversations: the inbox, one row per contact who has exchanged a message — the last message,
-- how many inbound messages are unread, and the channel it came on.
--
--   inbox:         WHERE workspace_id = $ws ORDER BY last_message_at DESC, contact_id DESC
--                  (conversations_inbox; `AND unread > 0` for the unread view walks the same
--                  index); join contacts.contacts for names and assignees.
-- Counts cover messages that were queued or received: a scheduled message joins when it goes out.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 5.9

CREATE TABLE conversations (
    contact_id      uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL,
    last_message_id uuid NOT NULL,
    last_message_at timestamptz NOT NULL,
    last_direction  text NOT NULL,
    channel         text NOT NULL,        -- of the last message
    last_preview    text NOT NULL,        -- its first 200 characters (or the e-mail subject)
    last_inbound_at timestamptz,
    unread          int NOT NULL DEFAULT 0,
    messages        int NOT NULL DEFAULT 0
) WITH (fillfactor = 80);

-- @batch MessageReceived MessageQueued
-- Each contact's last message and its counts in one pass: one sort, windows over each contact's
-- events, the last row kept (a join of two aggregates over the batch was planned as a nested loop
-- whenever the planner guessed a handful of rows, which it does for a live batch).  OFFSET 0 keeps
-- the inner query a query of its own, so each event's time is parsed once: pulled up into the
-- windows, `at` was parsed twice (for max(at) and for the row): 83,600 -> 78,500 instructions per
-- inbound message (callgrind, batches of 150).
INSERT INTO conversations AS c (contact_id, workspace_id, last_message_id, last_message_at, last_direction,
                                channel, last_preview, last_inbound_at, unread, messages)
SELECT DISTINCT ON (contact_id) contact_id, workspace, message_id, at, direction, channel, preview,
       max(at) FILTER (WHERE direction = 'inbound') OVER w, count(*) FILTER (WHERE direction = 'inbound') OVER w,
       count(*) OVER w
  FROM (SELECT contact_id, workspace, position,
               (payload->>'message_id')::uuid AS message_id,
               coalesce(payload->>'received_at', payload->>'queued_at', payload->>'created_at')::timestamptz AS at,
               payload->>'channel' AS channel,
               CASE type WHEN 'MessageReceived' THEN 'inbound' ELSE 'outbound' END AS direction,
               left(coalesce(nullif(payload->>'body', ''), payload->>'subject', ''), 200) AS preview
          FROM (SELECT unnest($1) AS position, unnest($9) AS contact_id, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
         WHERE type IN ('MessageReceived', 'MessageQueued') OFFSET 0) AS e
WINDOW w AS (PARTITION BY contact_id ORDER BY position DESC ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
 ORDER BY contact_id, position DESC
ON CONFLICT (contact_id) DO UPDATE
   SET last_message_id = excluded.last_message_id,
       last_message_at = excluded.last_message_at,
       last_direction = excluded.last_direction,
       channel = excluded.channel,
       last_preview = excluded.last_preview,
       last_inbound_at = coalesce(excluded.last_inbound_at, c.last_inbound_at),
       unread = c.unread + excluded.unread,
       messages = c.messages + excluded.messages;

-- @batch MessageRead
-- A message is read once.  Only an inbound message's MessageRead names the member who read it
-- (`by`, which is null when the system marks it), so a read receipt of an outbound message, which
-- has no `by`, changes nothing here.
UPDATE conversations c
   SET unread = greatest(c.unread - r.n, 0)
  FROM (SELECT contact_id, count(*) AS n
          FROM (SELECT unnest($9) AS contact_id, unnest($3) AS type, unnest($7) AS payload) AS e
         WHERE type = 'MessageRead' AND payload ? 'by'
         GROUP BY 1) r
 WHERE c.contact_id = r.contact_id;

-- @batch ContactDeleted
-- After the sections above, as a per-event section would run. A batch section rather than one per
-- event: a file without `@on` sections spares every batch the pass looking for their events.
DELETE FROM conversations
 WHERE contact_id IN (SELECT contact_id
                        FROM (SELECT unnest($9) AS contact_id, unnest($3) AS type) AS e
                       WHERE type = 'ContactDeleted');

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX conversations_inbox ON conversations (workspace_id, last_message_at, contact_id);

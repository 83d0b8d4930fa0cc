-- Messages: a contact's thread, GET /v1/workspaces/{ws}/contacts/{id}/messages, shaped like
-- SPEC §5's message object (id, contact_id, channel, direction, body, media_urls, status,
-- created_at, send_at, provider_id, error).
--
--   thread, oldest first:  WHERE contact_id = $c AND (created_at, id) > ($cursor_at, $cursor_id)
--                          ORDER BY created_at, id LIMIT $n                      (messages_thread)
--   status callbacks:      WHERE provider_id = $sid AND direction = 'outbound' (messages_provider)
-- status is one of queued, scheduled, sent, delivered, read, failed, undelivered, received,
-- cancelled; the *_at columns say when each step happened.
--
-- Messages are the bulk of the log, so this file works a batch at a time (@batch sections: each
-- runs once per batch, in file order, with the batch's events as arrays; unnest only the arrays
-- a section reads, which is cheaper than all eight).  New messages go in first, then each message
-- moves to its latest status.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 13.6

CREATE TABLE messages (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id   uuid NOT NULL,
    channel      text NOT NULL,         -- sms, mms, whatsapp, email, chat
    direction    text NOT NULL,         -- inbound, outbound
    status       text NOT NULL,
    body         text NOT NULL DEFAULT '',
    subject      text,
    media_urls   jsonb NOT NULL DEFAULT '[]',
    from_address text,
    to_address   text,
    segments     int,
    encoding     text,
    author_id    uuid,
    provider_id  text,
    error        text,
    error_code   text,
    created_at   timestamptz NOT NULL,
    send_at      timestamptz,
    queued_at    timestamptz,
    sent_at      timestamptz,
    delivered_at timestamptz,
    read_at      timestamptz,
    failed_at    timestamptz,
    cancelled_at timestamptz,
    updated_at   timestamptz NOT NULL
) WITH (fillfactor = 50);  -- an outbound message changes status two or three times: room for HOT
-- The second guard against a provider's retry recorded twice (docs/events.md, "Bounded state").
CREATE UNIQUE INDEX messages_inbound_provider ON messages (workspace_id, provider_id)
    WHERE direction = 'inbound' AND provider_id IS NOT NULL;

-- A batch's MessageReceived as rows of messages (a SQL function the planner inlines into the
-- statements below; $1 the streams' ids, $2 type, $3 workspace, $4 recorded_at, $5 payload).
CREATE FUNCTION received(uuid[], text[], uuid[], timestamptz[], jsonb[])
RETURNS TABLE (id uuid, workspace_id uuid, contact_id uuid, channel text, direction text, status text, body text,
               subject text, media_urls jsonb, from_address text, to_address text, provider_id text,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE AS $$
SELECT (payload->>'message_id')::uuid, workspace, stream_id, payload->>'channel', 'inbound',
       'received', coalesce(payload->>'body', ''), payload->>'subject', coalesce(payload->'media_urls', '[]'),
       payload->>'from', payload->>'to', payload->>'provider_id', (payload->>'received_at')::timestamptz,
       recorded_at
  FROM (SELECT unnest($1) AS stream_id, unnest($2) AS type, unnest($3) AS workspace, unnest($4) AS recorded_at,
               unnest($5) AS payload) AS e
 WHERE type = 'MessageReceived'
$$;

-- @batch MessageReceived
-- A plain insert first: `ON CONFLICT DO NOTHING` probes both unique indexes for every row before
-- inserting it (and inserts it speculatively, confirmed by a second WAL record), yet a message id
-- or an inbound provider id is recorded twice only in the rare cases docs/events.md ("Bounded
-- state") describes, so the plain insert's own uniqueness checks almost never fire. When one does,
-- the batch's insert is rolled back and done again skipping the rows already there (or earlier in
-- the batch): the same rows as always, at twice the cost for that batch.
BEGIN
    INSERT INTO messages (id, workspace_id, contact_id, channel, direction, status, body, subject, media_urls,
                          from_address, to_address, provider_id, created_at, updated_at)
    SELECT * FROM received($9, $3, $5, $6, $7);
EXCEPTION WHEN unique_violation THEN
    INSERT INTO messages (id, workspace_id, contact_id, channel, direction, status, body, subject, media_urls,
                          from_address, to_address, provider_id, created_at, updated_at)
    SELECT * FROM received($9, $3, $5, $6, $7)
    ON CONFLICT DO NOTHING;
END;

-- @batch MessageScheduled MessageQueued
-- A scheduled message is queued again at send time: the last event of each message wins.
INSERT INTO messages AS m (id, workspace_id, contact_id, channel, direction, status, body, subject, media_urls,
                           from_address, to_address, segments, encoding, author_id, created_at, send_at,
                           queued_at, updated_at)
SELECT DISTINCT ON ((payload->>'message_id')::uuid)
       (payload->>'message_id')::uuid, workspace, stream_id, payload->>'channel', 'outbound',
       CASE type WHEN 'MessageScheduled' THEN 'scheduled' ELSE 'queued' END,
       coalesce(payload->>'body', ''), payload->>'subject', coalesce(payload->'media_urls', '[]'),
       payload->>'from', payload->>'to', (payload->>'segments')::int, payload->>'encoding',
       (payload->>'author_id')::uuid, (payload->>'created_at')::timestamptz, (payload->>'send_at')::timestamptz,
       CASE type WHEN 'MessageQueued' THEN coalesce(payload->>'queued_at', payload->>'created_at')::timestamptz END,
       recorded_at
  FROM (SELECT unnest($1) AS position, unnest($9) AS stream_id, unnest($3) AS type, unnest($5) AS workspace, unnest($6) AS recorded_at, unnest($7) AS payload) AS e
 WHERE type IN ('MessageScheduled', 'MessageQueued')
 ORDER BY (payload->>'message_id')::uuid, position DESC
ON CONFLICT (id) DO UPDATE
   SET status = excluded.status, queued_at = excluded.queued_at, updated_at = excluded.updated_at
 WHERE m.status = 'scheduled';

-- @batch MessageSent MessageDelivered MessageRead MessageFailed MessageScheduleCancelled
UPDATE messages m
   SET status = s.status,
       provider_id = coalesce(s.provider_id, m.provider_id),
       sent_at = coalesce(s.sent_at, m.sent_at),
       delivered_at = coalesce(s.delivered_at, m.delivered_at),
       read_at = coalesce(s.read_at, m.read_at),
       failed_at = coalesce(s.failed_at, m.failed_at),
       cancelled_at = coalesce(s.cancelled_at, m.cancelled_at),
       error = coalesce(s.error, m.error),
       error_code = coalesce(s.error_code, m.error_code),
       updated_at = s.updated_at
  FROM (SELECT (payload->>'message_id')::uuid AS id,
               (array_agg(CASE type WHEN 'MessageSent' THEN 'sent'
                                    WHEN 'MessageDelivered' THEN 'delivered'
                                    WHEN 'MessageRead' THEN 'read'
                                    WHEN 'MessageFailed' THEN payload->>'status'
                                    ELSE 'cancelled' END ORDER BY position DESC))[1] AS status,
               (array_agg(payload->>'provider_id' ORDER BY position DESC)
                    FILTER (WHERE payload->>'provider_id' IS NOT NULL))[1] AS provider_id,
               max((payload->>'at')::timestamptz) FILTER (WHERE type = 'MessageSent') AS sent_at,
               max((payload->>'at')::timestamptz) FILTER (WHERE type = 'MessageDelivered') AS delivered_at,
               max((payload->>'at')::timestamptz) FILTER (WHERE type = 'MessageRead') AS read_at,
               max((payload->>'at')::timestamptz) FILTER (WHERE type = 'MessageFailed') AS failed_at,
               max((payload->>'at')::timestamptz) FILTER (WHERE type = 'MessageScheduleCancelled') AS cancelled_at,
               max(payload->>'error') FILTER (WHERE type = 'MessageFailed') AS error,
               max(payload->>'code') FILTER (WHERE type = 'MessageFailed') AS error_code,
               max(recorded_at) AS updated_at
          FROM (SELECT unnest($1) AS position, unnest($3) AS type, unnest($6) AS recorded_at, unnest($7) AS payload) AS e
         WHERE type IN ('MessageSent', 'MessageDelivered', 'MessageRead', 'MessageFailed',
                        'MessageScheduleCancelled')
         GROUP BY 1) s
 WHERE m.id = s.id;

-- @batch ContactDeleted
-- Deleting a contact cancels its scheduled messages (they are listed in the event), at the time of
-- the first event that lists each. A batch section (last, where a per-event one would run): a
-- file without `@on` sections spares every batch the pass looking for their events.
UPDATE messages m
   SET status = 'cancelled', cancelled_at = d.at, updated_at = d.at
  FROM (SELECT DISTINCT ON (x::uuid) x::uuid AS id, recorded_at AS at
          FROM (SELECT unnest($1) AS position, unnest($3) AS type, unnest($6) AS recorded_at, unnest($7) AS payload) AS e,
               jsonb_array_elements_text(payload->'cancelled_message_ids') AS x
         WHERE type = 'ContactDeleted'
         ORDER BY x::uuid, position) AS d
 WHERE m.id = d.id AND m.status = 'scheduled';

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX messages_thread ON messages (contact_id, created_at, id);
CREATE INDEX messages_provider ON messages (provider_id) WHERE direction = 'outbound' AND provider_id IS NOT NULL;

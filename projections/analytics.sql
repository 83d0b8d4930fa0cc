-- Analytics: GET /v1/workspaces/{ws}/analytics?from=&to= (SPEC §5), as daily roll-ups so a report
-- reads days, not messages.  Days are UTC dates.
--
--   messages by channel, status, day and direction: messages_daily counts each message once, on
--   the day it was received or queued, under its current status (a message that is delivered later
--   moves from `sent` to `delivered` on the day it was sent):
--     SELECT day, channel, direction, status, sum(messages) FROM analytics.messages_daily
--      WHERE workspace_id = $ws AND day >= $from AND day < $to GROUP BY ...
--   response time, from a contact's first unanswered inbound message to the team's next reply
--   (an outbound message a member wrote; automatic and scheduled sends do not count):
--     SELECT avg(seconds), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
--            percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)
--       FROM analytics.responses WHERE workspace_id = $ws AND replied_at >= $from AND replied_at < $to
--   calls per day the call started: total, answered, missed (ended without an answer) and the
--   total talk time (average = duration_seconds / answered):  analytics.calls_daily
--   pipeline counts by stage: pipeline.counts (another projection).

CREATE TABLE messages_daily (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    channel      text NOT NULL,
    direction    text NOT NULL,
    status       text NOT NULL,
    messages     bigint NOT NULL,
    PRIMARY KEY (workspace_id, day, channel, direction, status)
);

-- Where each counted message sits in messages_daily, so a new status moves its count.
CREATE TABLE message_index (
    message_id   uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    channel      text NOT NULL,
    direction    text NOT NULL,
    status       text NOT NULL
) WITH (fillfactor = 85);

CREATE TABLE awaiting (
    contact_id   uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    since        timestamptz NOT NULL
);

CREATE TABLE responses (
    workspace_id uuid NOT NULL,
    contact_id   uuid NOT NULL,
    inbound_at   timestamptz NOT NULL,
    replied_at   timestamptz NOT NULL,
    seconds      double precision NOT NULL
);
CREATE INDEX responses_workspace ON responses (workspace_id, replied_at);

CREATE TABLE call_index (
    call_id      uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    direction    text NOT NULL
);

CREATE TABLE calls_daily (
    workspace_id     uuid NOT NULL,
    day              date NOT NULL,
    direction        text NOT NULL,
    calls            bigint NOT NULL DEFAULT 0,
    answered         bigint NOT NULL DEFAULT 0,
    missed           bigint NOT NULL DEFAULT 0,
    duration_seconds bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, direction)
);

-- @batch MessageReceived MessageQueued
WITH fresh AS (
    INSERT INTO message_index (message_id, workspace_id, day, channel, direction, status)
    SELECT (payload->>'message_id')::uuid, workspace,
           (coalesce(payload->>'received_at', payload->>'queued_at', payload->>'created_at')::timestamptz
                AT TIME ZONE 'UTC')::date,
           payload->>'channel',
           CASE type WHEN 'MessageReceived' THEN 'inbound' ELSE 'outbound' END,
           CASE type WHEN 'MessageReceived' THEN 'received' ELSE 'queued' END
      FROM projection_events($1, $2, $3, $4, $5, $6, $7, $8)
     WHERE type IN ('MessageReceived', 'MessageQueued') AND workspace IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING workspace_id, day, channel, direction, status)
INSERT INTO messages_daily AS d (workspace_id, day, channel, direction, status, messages)
SELECT workspace_id, day, channel, direction, status, count(*) FROM fresh GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (workspace_id, day, channel, direction, status) DO UPDATE SET messages = d.messages + excluded.messages;

-- @batch MessageSent MessageDelivered MessageRead MessageFailed
-- Each message's last status in the batch; a message that changes leaves one cell for another.
WITH last AS (
    SELECT DISTINCT ON ((payload->>'message_id')::uuid) (payload->>'message_id')::uuid AS message_id,
           CASE type WHEN 'MessageSent' THEN 'sent' WHEN 'MessageDelivered' THEN 'delivered'
                     WHEN 'MessageRead' THEN 'read' ELSE payload->>'status' END AS status
      FROM projection_events($1, $2, $3, $4, $5, $6, $7, $8)
     WHERE type IN ('MessageSent', 'MessageDelivered', 'MessageRead', 'MessageFailed')
     ORDER BY (payload->>'message_id')::uuid, position DESC),
moving AS (
    SELECT i.message_id, i.workspace_id, i.day, i.channel, i.direction, i.status AS old_status,
           l.status AS new_status
      FROM message_index i JOIN last l USING (message_id)
     WHERE i.status <> l.status),
moved AS (
    UPDATE message_index i SET status = m.new_status FROM moving m WHERE i.message_id = m.message_id),
delta AS (
    SELECT workspace_id, day, channel, direction, old_status AS status, -1 AS n FROM moving
    UNION ALL
    SELECT workspace_id, day, channel, direction, new_status, 1 FROM moving)
INSERT INTO messages_daily AS d (workspace_id, day, channel, direction, status, messages)
SELECT workspace_id, day, channel, direction, status, sum(n) FROM delta GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (workspace_id, day, channel, direction, status) DO UPDATE SET messages = d.messages + excluded.messages;

-- @on MessageReceived
INSERT INTO awaiting (contact_id, workspace_id, since)
VALUES (right($2, 36)::uuid, $5, ($7->>'received_at')::timestamptz)
ON CONFLICT (contact_id) DO NOTHING;

-- @on MessageQueued
-- A reply a member wrote and sent now (a dispatched scheduled message carries queued_at).
WITH answered AS (
    DELETE FROM awaiting
     WHERE $7->>'author_id' IS NOT NULL AND NOT $7 ? 'queued_at' AND contact_id = right($2, 36)::uuid
    RETURNING workspace_id, contact_id, since)
INSERT INTO responses (workspace_id, contact_id, inbound_at, replied_at, seconds)
SELECT workspace_id, contact_id, since, ($7->>'created_at')::timestamptz,
       greatest(extract(epoch FROM ($7->>'created_at')::timestamptz - since), 0)
  FROM answered;

-- @on ContactDeleted
DELETE FROM awaiting WHERE contact_id = right($2, 36)::uuid;

-- @on CallInitiated
INSERT INTO call_index (call_id, workspace_id, day, direction)
VALUES (right($2, 36)::uuid, coalesce($5, ($7->>'workspace_id')::uuid),
        (($7->>'started_at')::timestamptz AT TIME ZONE 'UTC')::date, $7->>'direction')
ON CONFLICT (call_id) DO NOTHING;
INSERT INTO calls_daily AS d (workspace_id, day, direction, calls)
VALUES (coalesce($5, ($7->>'workspace_id')::uuid), (($7->>'started_at')::timestamptz AT TIME ZONE 'UTC')::date,
        $7->>'direction', 1)
ON CONFLICT (workspace_id, day, direction) DO UPDATE SET calls = d.calls + 1;

-- @on CallCompleted CallFailed
-- A completed call that was never answered counts as missed, like a busy or unanswered one.
UPDATE calls_daily d
   SET answered = d.answered + CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 1 ELSE 0 END,
       missed = d.missed + CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 0 ELSE 1 END,
       duration_seconds = d.duration_seconds + coalesce(($7->>'duration_seconds')::int, 0)
  FROM call_index i
 WHERE i.call_id = right($2, 36)::uuid
   AND d.workspace_id = i.workspace_id AND d.day = i.day AND d.direction = i.direction;

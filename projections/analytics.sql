-- Analytics: GET /v1/workspaces/{ws}/analytics?from=&to= (SPEC §5), as daily roll-ups so a report
-- reads days, not messages.  Days are UTC dates.
--
--   messages by channel, by day and direction: each message counts once, on the day it was
--   received or queued (a scheduled message when it goes out):
--     SELECT day, channel, direction, sum(messages) FROM analytics.messages_daily
--      WHERE workspace_id = $ws AND day >= $from AND day < $to GROUP BY ...
--   messages by status: how many messages reached each status (received, queued, sent,
--   delivered, read, failed, undelivered) on each day; a message delivered the day after it was
--   sent counts as sent one day and delivered the next, so a range's delivery rate is
--   delivered / sent:
--     SELECT status, sum(messages) FROM analytics.status_daily WHERE workspace_id = $ws AND ...
--   response time, from a contact's first unanswered inbound message to the team's next reply
--   (an outbound message a member wrote; automatic and scheduled sends do not count):
--     SELECT avg(seconds), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
--            percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)
--       FROM analytics.responses WHERE workspace_id = $ws AND replied_at >= $from AND replied_at < $to
--   calls per day the call started: total, answered, missed (ended without an answer) and the
--   total talk time (average = duration_seconds / answered):  analytics.calls_daily
--   calls per agent and day the call started: the agent the call was last with (rung, answered,
--   unparked or transferred to; a call that went back to the queue stays with the agent who
--   missed it), calls, answered, missed, talk time:  analytics.calls_agents_daily
--   pipeline counts by stage: pipeline.counts (another projection).
--
-- Everything here is a counter or keyed by a new id, so batches add up in any grouping: the
-- message sections work a batch at a time.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 11.5
--
-- The payload keys read here: the lane's session is sent only these (of an inbound message, its
-- channel and time instead of the whole message), so it parses a fifth of the JSON.
-- @payload at received_at queued_at created_at channel direction author_id status by
-- @payload started_at workspace_id answered_at duration_seconds agent_id to_agent

CREATE TABLE messages_daily (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    channel      text NOT NULL,
    direction    text NOT NULL,
    messages     bigint NOT NULL,
    PRIMARY KEY (workspace_id, day, channel, direction)
);

CREATE TABLE status_daily (
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    direction    text NOT NULL,
    status       text NOT NULL,
    messages     bigint NOT NULL,
    PRIMARY KEY (workspace_id, day, direction, status)
);

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

CREATE TABLE call_index (
    call_id      uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    day          date NOT NULL,
    direction    text NOT NULL
);

-- The agent a call is with, for the per-agent counts (NULL: nobody yet).
CREATE TABLE call_agents (
    call_id  uuid PRIMARY KEY,
    agent_id uuid
);

CREATE TABLE calls_agents_daily (
    workspace_id     uuid NOT NULL,
    day              date NOT NULL,
    agent_id         uuid NOT NULL,
    calls            bigint NOT NULL DEFAULT 0,
    answered         bigint NOT NULL DEFAULT 0,
    missed           bigint NOT NULL DEFAULT 0,
    duration_seconds bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, agent_id)
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

-- @batch MessageReceived MessageQueued MessageSent MessageDelivered MessageRead MessageFailed
-- A batch of inbound messages alone (live, a burst of webhooks: most batches) counts each
-- (workspace, day, channel) once and adds the same counts to both tables, instead of carrying
-- every event through both aggregates.
IF NOT $3 && ARRAY['MessageQueued', 'MessageSent', 'MessageDelivered', 'MessageRead', 'MessageFailed'] THEN
    WITH d AS (
        SELECT workspace, (coalesce(payload->>'at', payload->>'received_at', payload->>'queued_at',
                                    payload->>'created_at')::timestamptz AT TIME ZONE 'UTC')::date AS day,
               payload->>'channel' AS channel, count(*) AS n
          FROM (SELECT unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
         WHERE type = 'MessageReceived' AND workspace IS NOT NULL
         GROUP BY 1, 2, 3),
    created AS (
        INSERT INTO messages_daily AS d (workspace_id, day, channel, direction, messages)
        SELECT workspace, day, channel, 'inbound', n FROM d
        ON CONFLICT (workspace_id, day, channel, direction) DO UPDATE SET messages = d.messages + excluded.messages)
    INSERT INTO status_daily AS d (workspace_id, day, direction, status, messages)
    SELECT workspace, day, 'inbound', 'received', sum(n)::bigint FROM d GROUP BY 1, 2
    ON CONFLICT (workspace_id, day, direction, status) DO UPDATE SET messages = d.messages + excluded.messages;
ELSE
WITH e AS (
    SELECT workspace, type, payload,
           (coalesce(payload->>'at', payload->>'received_at', payload->>'queued_at',
                     payload->>'created_at')::timestamptz AT TIME ZONE 'UTC')::date AS day
      FROM (SELECT unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
     WHERE type IN ('MessageReceived', 'MessageQueued', 'MessageSent', 'MessageDelivered', 'MessageRead',
                    'MessageFailed')
       AND workspace IS NOT NULL),
created AS (
    INSERT INTO messages_daily AS d (workspace_id, day, channel, direction, messages)
    SELECT workspace, day, payload->>'channel', CASE type WHEN 'MessageReceived' THEN 'inbound' ELSE 'outbound' END,
           count(*)
      FROM e WHERE type IN ('MessageReceived', 'MessageQueued') GROUP BY 1, 2, 3, 4
    ON CONFLICT (workspace_id, day, channel, direction) DO UPDATE SET messages = d.messages + excluded.messages)
INSERT INTO status_daily AS d (workspace_id, day, direction, status, messages)
SELECT workspace, day, direction, status, count(*)
  FROM (SELECT workspace, day,
               -- Only an inbound message's MessageRead names who read it (`by`).
               CASE WHEN type = 'MessageReceived' OR (type = 'MessageRead' AND payload ? 'by') THEN 'inbound'
                    ELSE 'outbound' END AS direction,
               CASE type WHEN 'MessageReceived' THEN 'received' WHEN 'MessageQueued' THEN 'queued'
                         WHEN 'MessageSent' THEN 'sent' WHEN 'MessageDelivered' THEN 'delivered'
                         WHEN 'MessageRead' THEN 'read' ELSE payload->>'status' END AS status
          FROM e) s
 GROUP BY 1, 2, 3, 4
ON CONFLICT (workspace_id, day, direction, status) DO UPDATE SET messages = d.messages + excluded.messages;
END IF;

-- @batch CallInitiated
WITH c AS (
    INSERT INTO call_index (call_id, workspace_id, day, direction)
    SELECT stream_id, coalesce(workspace, (payload->>'workspace_id')::uuid),
           ((payload->>'started_at')::timestamptz AT TIME ZONE 'UTC')::date, payload->>'direction'
      FROM (SELECT unnest($9) AS stream_id, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
     WHERE type = 'CallInitiated'
    ON CONFLICT (call_id) DO NOTHING
    RETURNING workspace_id, day, direction)
INSERT INTO calls_daily AS d (workspace_id, day, direction, calls)
SELECT workspace_id, day, direction, count(*) FROM c GROUP BY 1, 2, 3
ON CONFLICT (workspace_id, day, direction) DO UPDATE SET calls = d.calls + excluded.calls;

-- @batch MessageReceived MessageQueued
-- Response times, a batch at a time.  Per contact, number the events by how many replies came
-- before them (g): the inbound messages of group g wait for reply g+1, from the first of them
-- (or, for group 0, from the wait the contact was already in).  What is still waiting at the end
-- of the batch (the inbound messages after the contact's last reply: g = replies) stays in
-- `awaiting`.  Each contact's figures come from windows over one sort, and `awaiting` is joined by
-- its key: a join between two of these CTEs is planned as a nested loop whenever the planner
-- guesses a handful of rows (it cannot see how many events match a type), which a live batch of a
-- few hundred inbound messages made quadratic.
--
-- A batch with no MessageQueued holds no reply (live, a burst of inbound messages: most batches),
-- so nothing is answered and a contact already waiting stays as it is: only the contacts not yet
-- waiting start to, from their first inbound message here.  The short path writes exactly those
-- rows, looking each event's contact up in `awaiting` before anything else, so the windows, the
-- aggregates and the time's parsing are spent only on contacts that start waiting.
IF NOT $3 && ARRAY['MessageQueued'] THEN
    INSERT INTO awaiting (contact_id, workspace_id, since)
    SELECT contact_id, (array_agg(workspace ORDER BY position))[1],
           min(coalesce(payload->>'received_at', payload->>'created_at')::timestamptz)
      FROM (SELECT contact_id, workspace, position, payload
              FROM (SELECT unnest($1) AS position, unnest($9) AS contact_id, unnest($3) AS type, unnest($5) AS workspace,
                           unnest($7) AS payload) AS e
             WHERE type = 'MessageReceived') AS e
     WHERE NOT EXISTS (SELECT FROM awaiting a WHERE a.contact_id = e.contact_id)
     GROUP BY contact_id;
ELSE
WITH e AS (
    SELECT contact_id, workspace, position, type = 'MessageReceived' AS inbound,
           coalesce(payload->>'received_at', payload->>'created_at')::timestamptz AS at
      FROM (SELECT unnest($1) AS position, unnest($9) AS contact_id, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
     WHERE type = 'MessageReceived'
        OR (type = 'MessageQueued' AND payload->>'author_id' IS NOT NULL AND NOT payload ? 'queued_at')),
g AS (
    SELECT *, count(*) FILTER (WHERE NOT inbound)
                  OVER (PARTITION BY contact_id ORDER BY position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS g,
              count(*) FILTER (WHERE NOT inbound) OVER (PARTITION BY contact_id) AS replies
      FROM e),
first_in AS (
    SELECT contact_id, g, min(at) AS since FROM g WHERE inbound GROUP BY contact_id, g),
per_contact AS (
    SELECT contact_id, (array_agg(workspace))[1] AS workspace, max(replies) AS replies,
           count(*) FILTER (WHERE inbound AND g = replies) AS trailing,
           min(at) FILTER (WHERE inbound AND g = replies) AS trailing_since
      FROM g GROUP BY contact_id),
answered AS (
    INSERT INTO responses (workspace_id, contact_id, inbound_at, replied_at, seconds)
    SELECT r.workspace, r.contact_id, w.since, r.at, greatest(extract(epoch FROM r.at - w.since), 0)
      FROM g r
      LEFT JOIN first_in f ON f.contact_id = r.contact_id AND f.g = r.g
      LEFT JOIN awaiting a ON a.contact_id = r.contact_id AND r.g = 0
     CROSS JOIN LATERAL (SELECT coalesce(a.since, f.since) AS since) w
     WHERE NOT r.inbound AND w.since IS NOT NULL),
done AS (
    DELETE FROM awaiting a USING per_contact p
     WHERE a.contact_id = p.contact_id AND p.replies > 0 AND p.trailing = 0)
-- Every part of the statement sees `awaiting` as it was before the statement.  A contact still
-- waiting since the same moment (more inbound messages, no reply: most of a live batch) keeps its
-- row untouched: not even locked by ON CONFLICT.
INSERT INTO awaiting AS a (contact_id, workspace_id, since)
SELECT contact_id, workspace, since
  FROM (SELECT p.contact_id, p.workspace, w.since AS was,
               coalesce(CASE WHEN p.replies = 0 THEN w.since END, p.trailing_since) AS since
          FROM per_contact p
          LEFT JOIN awaiting w ON w.contact_id = p.contact_id
         WHERE p.trailing > 0) s
 WHERE was IS NULL OR was IS DISTINCT FROM since
ON CONFLICT (contact_id) DO UPDATE SET since = excluded.since;
END IF;

-- @on ContactDeleted
DELETE FROM awaiting WHERE contact_id = $9;

-- @on CallCompleted CallFailed
-- A completed call that was never answered counts as missed, like a busy or unanswered one.
UPDATE calls_daily d
   SET answered = d.answered + CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 1 ELSE 0 END,
       missed = d.missed + CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 0 ELSE 1 END,
       duration_seconds = d.duration_seconds + coalesce(($7->>'duration_seconds')::int, 0)
  FROM call_index i
 WHERE i.call_id = $9
   AND d.workspace_id = i.workspace_id AND d.day = i.day AND d.direction = i.direction;

-- @on CallInitiated CallAnswered CallUnparked CallTransferred
-- Who the call is with: an event that names an agent moves it to them.  (CallInitiated may run
-- here before the batch section above has indexed the call: only call_agents is touched.)
INSERT INTO call_agents (call_id, agent_id)
VALUES ($9, coalesce(($7->>'agent_id')::uuid, ($7->>'to_agent')::uuid))
ON CONFLICT (call_id) DO UPDATE
   SET agent_id = coalesce(excluded.agent_id, call_agents.agent_id);

-- @on CallCompleted CallFailed
-- The ended call counts for the agent it was last with.
INSERT INTO calls_agents_daily AS d (workspace_id, day, agent_id, calls, answered, missed, duration_seconds)
SELECT i.workspace_id, i.day, a.agent_id, 1,
       CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 1 ELSE 0 END,
       CASE WHEN $3 = 'CallCompleted' AND $7->>'answered_at' IS NOT NULL THEN 0 ELSE 1 END,
       coalesce(($7->>'duration_seconds')::int, 0)
  FROM call_index i JOIN call_agents a ON a.call_id = i.call_id
 WHERE i.call_id = $9 AND a.agent_id IS NOT NULL
ON CONFLICT (workspace_id, day, agent_id) DO UPDATE
   SET calls = d.calls + 1, answered = d.answered + excluded.answered, missed = d.missed + excluded.missed,
       duration_seconds = d.duration_seconds + excluded.duration_seconds;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX responses_workspace ON responses (workspace_id, replied_at);

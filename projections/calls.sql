-- Calls: the call log (GET /v1/workspaces/{ws}/calls?status=) and the live board, shaped like SPEC
-- §5's call object (id, contact_id, direction, from, to, status, agent_id, parked_slot,
-- started_at, answered_at, ended_at, duration_seconds).
--
--   log, newest first:  WHERE workspace_id = $ws [AND status = $s]
--                       ORDER BY started_at DESC, id DESC        (calls_page; no index on status:
--                       a call changes status several times, and each change would then rewrite
--                       every index entry of the row)
--   live board:         SELECT * FROM calls.board WHERE workspace_id = $ws: ringing, in progress,
--                       and parked calls with their slot and since when (parked_at)
--   Twilio callbacks:   WHERE call_sid = $sid                                    (calls_sid)
-- status is one of queued, ringing, in-progress, parked, completed, busy, no-answer, failed,
-- cancelled.  `version` is the call stream's version: the ETag.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 2.6

CREATE TABLE calls (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL,
    contact_id          uuid,
    call_sid            text,
    direction           text NOT NULL,
    from_number         text NOT NULL,
    to_number           text NOT NULL,
    status              text NOT NULL,
    agent_id            uuid,
    parked_slot         int,
    parked_at           timestamptz,
    parked_by           uuid,
    started_at          timestamptz NOT NULL,
    answered_at         timestamptz,
    ended_at            timestamptz,
    duration_seconds    int,
    hangup_requested_at timestamptz,
    transfers           int NOT NULL DEFAULT 0,
    recordings          jsonb NOT NULL DEFAULT '[]',   -- [{url, duration_seconds, recording_sid}]
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL
) WITH (fillfactor = 85);

CREATE VIEW board AS
    SELECT id, workspace_id, contact_id, direction, from_number, to_number, status, agent_id, parked_slot,
           parked_at, parked_by, started_at, answered_at
      FROM calls
     WHERE status IN ('queued', 'ringing', 'in-progress', 'parked');

-- @batch CallInitiated
-- New calls a batch at a time, before the per-event sections below move them along.
INSERT INTO calls (id, workspace_id, contact_id, call_sid, direction, from_number, to_number, status, agent_id,
                   started_at, updated_at, version)
SELECT right(stream, 36)::uuid, coalesce(workspace, (payload->>'workspace_id')::uuid),
       (payload->>'contact_id')::uuid, payload->>'call_sid', payload->>'direction', payload->>'from',
       payload->>'to', 'queued', (payload->>'agent_id')::uuid, (payload->>'started_at')::timestamptz, recorded_at,
       version
  FROM (SELECT unnest($2) AS stream, unnest($3) AS type, unnest($4) AS version, unnest($5) AS workspace, unnest($6) AS recorded_at, unnest($7) AS payload) AS e
 WHERE type = 'CallInitiated'
ON CONFLICT (id) DO NOTHING;

-- @on CallSidRecorded
UPDATE calls SET call_sid = $7->>'call_sid', updated_at = $6, version = $4 WHERE id = right($2, 36)::uuid;

-- @on CallRinging
UPDATE calls SET status = 'ringing', call_sid = coalesce($7->>'call_sid', call_sid), updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallAnswered
UPDATE calls
   SET status = 'in-progress', agent_id = coalesce(($7->>'agent_id')::uuid, agent_id),
       answered_at = ($7->>'answered_at')::timestamptz, call_sid = coalesce($7->>'call_sid', call_sid),
       updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallEnqueued
-- Nobody took the call: the caller waits in the workspace queue, with no agent.
UPDATE calls SET status = 'queued', agent_id = NULL, updated_at = $6, version = $4 WHERE id = right($2, 36)::uuid;

-- @on CallParked
UPDATE calls
   SET status = 'parked', parked_slot = ($7->>'slot')::int, parked_at = ($7->>'parked_at')::timestamptz,
       parked_by = ($7->>'parked_by')::uuid, updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallUnparked
UPDATE calls
   SET status = 'in-progress', agent_id = ($7->>'agent_id')::uuid, parked_slot = NULL, parked_at = NULL,
       parked_by = NULL, updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallTransferred
UPDATE calls
   SET status = 'in-progress', agent_id = ($7->>'to_agent')::uuid, transfers = transfers + 1,
       parked_slot = NULL, parked_at = NULL, parked_by = NULL, updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallTransferFailed
-- The target did not answer: the call is back with the agent who had it.
UPDATE calls SET agent_id = ($7->>'back_to')::uuid, updated_at = $6, version = $4 WHERE id = right($2, 36)::uuid;

-- @on CallDialAttempted
UPDATE calls SET updated_at = $6, version = $4 WHERE id = right($2, 36)::uuid;

-- @on CallHangupRequested
UPDATE calls SET hangup_requested_at = ($7->>'at')::timestamptz, updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallRecordingAvailable
UPDATE calls
   SET recordings = recordings || jsonb_build_array(jsonb_build_object(
           'url', $7->>'url', 'duration_seconds', ($7->>'duration_seconds')::int,
           'recording_sid', $7->>'recording_sid')),
       updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallCompleted
UPDATE calls
   SET status = 'completed', answered_at = coalesce(($7->>'answered_at')::timestamptz, answered_at),
       ended_at = ($7->>'ended_at')::timestamptz, duration_seconds = ($7->>'duration_seconds')::int,
       call_sid = coalesce($7->>'call_sid', call_sid), parked_slot = NULL, parked_at = NULL, parked_by = NULL,
       updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on CallFailed
UPDATE calls
   SET status = $7->>'reason', ended_at = ($7->>'ended_at')::timestamptz, duration_seconds = 0,
       call_sid = coalesce($7->>'call_sid', call_sid), updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX calls_page ON calls (workspace_id, started_at, id);
CREATE INDEX calls_sid ON calls (call_sid) WHERE call_sid IS NOT NULL;
CREATE INDEX calls_contact ON calls (contact_id, started_at) WHERE contact_id IS NOT NULL;
CREATE INDEX calls_live ON calls (workspace_id, started_at)
    WHERE status IN ('queued', 'ringing', 'in-progress', 'parked');

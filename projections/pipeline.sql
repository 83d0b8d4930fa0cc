-- Pipelines: GET /v1/workspaces/{ws}/pipeline/stages and contacts per stage (and analytics'
-- pipeline counts).
--
--   pipeline.stages    the workspace's stages in order:  WHERE workspace_id = $ws ORDER BY position
--   pipeline.contacts  each live contact's stage (NULL: none)
--   pipeline.counts    contacts per stage:               WHERE workspace_id = $ws
-- A removed stage disappears from `stages`; contacts in it keep the name (docs/events.md), so
-- `counts` may list it until they move.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 1.5

CREATE TABLE stages (
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    position     int NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE contacts (
    contact_id   uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    stage        text
);

CREATE VIEW counts AS
    SELECT workspace_id, stage, count(*)::int AS contacts FROM contacts GROUP BY workspace_id, stage;

-- @batch ContactCreated
-- New contacts a batch at a time, before the per-event sections below (which may move them).
INSERT INTO contacts (contact_id, workspace_id, stage)
SELECT right(stream, 36)::uuid, coalesce(workspace, (payload->>'workspace_id')::uuid), payload->>'stage'
  FROM (SELECT unnest($2) AS stream, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
 WHERE type = 'ContactCreated'
ON CONFLICT (contact_id) DO NOTHING;

-- @on PipelineStageAdded
UPDATE stages SET position = position + 1
 WHERE workspace_id = right($2, 36)::uuid AND position >= ($7->>'position')::int;
INSERT INTO stages (workspace_id, name, position)
VALUES (right($2, 36)::uuid, $7->>'name', ($7->>'position')::int)
ON CONFLICT (workspace_id, name) DO NOTHING;

-- @on PipelineStageRemoved
DELETE FROM stages WHERE workspace_id = right($2, 36)::uuid AND name = $7->>'name';
UPDATE stages SET position = position - 1
 WHERE workspace_id = right($2, 36)::uuid AND position > ($7->>'position')::int;

-- @on ContactStageChanged
UPDATE contacts SET stage = $7->>'to' WHERE contact_id = right($2, 36)::uuid;

-- @on ContactDeleted
DELETE FROM contacts WHERE contact_id = right($2, 36)::uuid;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX contacts_stage ON contacts (workspace_id, stage);

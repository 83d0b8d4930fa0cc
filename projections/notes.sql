-- Notes on contacts: GET /v1/workspaces/{ws}/contacts/{id}/notes.
--
-- One row per live note.  A private note is visible only to its author: filter with
--   WHERE contact_id = $1 AND (NOT private OR author_id = $me)
-- and page with the (contact_id, created_at, id) index.  `mentions` holds the member ids the note
-- mentions ("notes that mention me": WHERE mentions @> ARRAY[$me]).
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 1.8

CREATE TABLE notes (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id   uuid NOT NULL,
    author_id    uuid,
    body         text NOT NULL,
    private      boolean NOT NULL DEFAULT false,
    mentions     uuid[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    edited_at    timestamptz,
    edited_by    uuid
);

-- New notes go in a batch at a time: the arrays $1..$8 hold the batch's events (stream, type,
-- workspace and payload are $2, $3, $5 and $7), and this runs before the per-event sections.
-- @batch NoteAdded
INSERT INTO notes (id, workspace_id, contact_id, author_id, body, private, mentions, created_at)
SELECT (payload->>'note_id')::uuid, workspace, right(stream, 36)::uuid, (payload->>'author_id')::uuid,
       payload->>'body', coalesce((payload->>'private')::boolean, false),
       ARRAY(SELECT jsonb_array_elements_text(payload->'mentions'))::uuid[], (payload->>'at')::timestamptz
  FROM (SELECT unnest($2) AS stream, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
 WHERE type = 'NoteAdded'
ON CONFLICT (id) DO NOTHING;

-- Each per-event handler gets the event as $1 position, $2 stream, $3 type, $4 version,
-- $5 workspace, $6 recorded_at, $7 payload (jsonb), $8 metadata (jsonb).  The contact's id is its
-- stream's uuid.

-- @on NoteEdited
UPDATE notes
   SET body = $7->>'body',
       mentions = ARRAY(SELECT jsonb_array_elements_text($7->'mentions'))::uuid[],
       edited_at = ($7->>'at')::timestamptz,
       edited_by = ($7->>'by')::uuid
 WHERE id = ($7->>'note_id')::uuid;

-- @on NoteDeleted
DELETE FROM notes WHERE id = ($7->>'note_id')::uuid;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX notes_contact ON notes (contact_id, created_at, id);
CREATE INDEX notes_mentions ON notes USING gin (mentions);

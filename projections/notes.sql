-- Notes on contacts: GET /v1/workspaces/{ws}/contacts/{id}/notes.
--
-- One row per live note.  A private note is visible only to its author: filter with
--   WHERE contact_id = $1 AND (NOT private OR author_id = $me)
-- and page with the (contact_id, created_at, id) index.  `mentions` holds the member ids the note
-- mentions ("notes that mention me": WHERE mentions @> ARRAY[$me]).

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
CREATE INDEX notes_contact ON notes (contact_id, created_at, id);
CREATE INDEX notes_mentions ON notes USING gin (mentions);

-- Each handler gets the event as $1 position, $2 stream, $3 type, $4 version, $5 workspace,
-- $6 recorded_at, $7 payload (jsonb), $8 metadata (jsonb).  The contact's id is its stream's uuid.

-- @on NoteAdded
INSERT INTO notes (id, workspace_id, contact_id, author_id, body, private, mentions, created_at)
VALUES (($7->>'note_id')::uuid, $5, right($2, 36)::uuid, ($7->>'author_id')::uuid, $7->>'body',
        coalesce(($7->>'private')::boolean, false),
        ARRAY(SELECT jsonb_array_elements_text($7->'mentions'))::uuid[], ($7->>'at')::timestamptz)
ON CONFLICT (id) DO NOTHING;

-- @on NoteEdited
UPDATE notes
   SET body = $7->>'body',
       mentions = ARRAY(SELECT jsonb_array_elements_text($7->'mentions'))::uuid[],
       edited_at = ($7->>'at')::timestamptz,
       edited_by = ($7->>'by')::uuid
 WHERE id = ($7->>'note_id')::uuid;

-- @on NoteDeleted
DELETE FROM notes WHERE id = ($7->>'note_id')::uuid;

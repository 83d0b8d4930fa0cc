-- Contacts: GET /v1/workspaces/{ws}/contacts (search, filters, pages) and .../contacts/{id}.
--
-- One row per live contact (a deleted contact's row is removed).  Queries the API runs:
--   page, newest first:  WHERE workspace_id = $ws AND (created_at, id) < ($cursor_at, $cursor_id)
--                        ORDER BY created_at DESC, id DESC LIMIT $n            (contacts_page)
--   search ?q=:          AND search LIKE '%' || lower($q) || '%'    (trigram index, 3+ characters;
--                        `search` holds the name, the phones with and without '+', the e-mails)
--   ?stage=:             AND stage = $stage                                   (contacts_stage)
--   ?tag=:               AND tag_keys @> ARRAY[lower($tag)]    (tags compare case-insensitively)
--   ?assignee=:          AND assignee_id = $user                              (contacts_assignee)
--   inbound routing:     WHERE workspace_id = $ws AND phones @> ARRAY[$e164]  (contacts_phones)
-- The ETag is the contact stream's version, which every event of the stream moves, messages and
-- notes included; it lives in the narrow contacts.versions (join on id), so the updates it takes
-- on every message stay cheap and never touch this table's many indexes.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 7.7

CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;

-- Helpers.  A PL/pgSQL function keeps its plans for the session; an SQL function is inlined when
-- it is a single expression (search_text), but one holding an aggregate or a sub-select would be
-- planned again on every call, which costs far more than the statement it serves.
CREATE FUNCTION text_array(j jsonb) RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS
$$ BEGIN RETURN ARRAY(SELECT jsonb_array_elements_text(j)); END $$;

CREATE FUNCTION search_text(name text, phones text[], emails text[]) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT lower(concat_ws(' ', name, array_to_string(phones, ' '), replace(array_to_string(phones, ' '), '+', ''),
                          array_to_string(emails, ' '))) $$;

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name         text NOT NULL DEFAULT '',
    phones       text[] NOT NULL DEFAULT '{}',   -- E.164
    emails       text[] NOT NULL DEFAULT '{}',   -- lower case
    tags         text[] NOT NULL DEFAULT '{}',   -- as first spelt
    stage        text,
    assignee_id  uuid,
    opted_out    text[] NOT NULL DEFAULT '{}',   -- channels: sms, whatsapp, email
    created_at   timestamptz NOT NULL,
    created_by   uuid,
    updated_at   timestamptz NOT NULL,
    tag_keys     text[] NOT NULL DEFAULT '{}',   -- lower(tags), kept by the handlers
    search       text NOT NULL DEFAULT ''        -- search_text(name, phones, emails), likewise
);

CREATE TABLE versions (
    id      uuid PRIMARY KEY,
    version bigint NOT NULL
) WITH (fillfactor = 90);
-- Updated on every batch that touches the contact (HOT: no index changes), so a page keeps room for
-- new versions; but not half of it: a page holding dead versions is pruned whenever it is read with
-- less free space than the fillfactor reserves, so at 50 nearly every update pruned its page again
-- (7% of the lane's instructions for a burst of inbound messages); at 90, once its room is used up.

-- @batch ContactCreated
-- New contacts, a batch at a time: runs before the per-event sections below, so their updates
-- find the row.
INSERT INTO contacts (id, workspace_id, name, phones, emails, tags, tag_keys, stage, assignee_id, created_at,
                      created_by, updated_at, search)
SELECT id, workspace_id, name, phones, emails, tags, lower(tags::text)::text[], stage, assignee_id, created_at,
       created_by, created_at, search_text(name, phones, emails)
  FROM (SELECT stream_id AS id, coalesce(workspace, (payload->>'workspace_id')::uuid) AS workspace_id,
               coalesce(payload->>'name', '') AS name,
               ARRAY(SELECT jsonb_array_elements_text(payload->'phones')) AS phones,
               ARRAY(SELECT jsonb_array_elements_text(payload->'emails')) AS emails,
               ARRAY(SELECT jsonb_array_elements_text(payload->'tags')) AS tags,
               payload->>'stage' AS stage, (payload->>'assignee_id')::uuid AS assignee_id,
               (payload->>'created_at')::timestamptz AS created_at, (payload->>'created_by')::uuid AS created_by
          FROM (SELECT unnest($9) AS stream_id, unnest($3) AS type, unnest($5) AS workspace, unnest($7) AS payload) AS e
         WHERE type = 'ContactCreated') AS c
ON CONFLICT (id) DO NOTHING;
INSERT INTO versions (id, version)
SELECT stream_id, version FROM (SELECT unnest($9) AS stream_id, unnest($3) AS type, unnest($4) AS version) AS e WHERE type = 'ContactCreated'
ON CONFLICT (id) DO NOTHING;

-- @on ContactUpdated
-- Only the fields that changed are in the payload.
UPDATE contacts
   SET name = CASE WHEN $7 ? 'name' THEN coalesce($7->>'name', '') ELSE name END,
       phones = CASE WHEN $7 ? 'phones' THEN text_array($7->'phones') ELSE phones END,
       emails = CASE WHEN $7 ? 'emails' THEN text_array($7->'emails') ELSE emails END,
       tags = CASE WHEN $7 ? 'tags' THEN text_array($7->'tags') ELSE tags END,
       updated_at = $6
 WHERE id = $9;
UPDATE contacts SET tag_keys = lower(tags::text)::text[], search = search_text(name, phones, emails)
 WHERE id = $9;

-- @on ContactStageChanged
UPDATE contacts SET stage = $7->>'to', updated_at = $6 WHERE id = $9;

-- @on ContactAssigned
UPDATE contacts SET assignee_id = ($7->>'assignee_id')::uuid, updated_at = $6 WHERE id = $9;

-- @on ContactTagged
UPDATE contacts
   SET tags = array_append(tags, $7->>'tag'), tag_keys = array_append(tag_keys, lower($7->>'tag')), updated_at = $6
 WHERE id = $9 AND NOT lower($7->>'tag') = ANY (tag_keys);

-- @on ContactUntagged
UPDATE contacts
   SET tags = ARRAY(SELECT t FROM unnest(tags) AS t WHERE lower(t) <> lower($7->>'tag')),
       tag_keys = array_remove(tag_keys, lower($7->>'tag')), updated_at = $6
 WHERE id = $9 AND lower($7->>'tag') = ANY (tag_keys);

-- @on ContactOptedOut
UPDATE contacts SET opted_out = array_append(opted_out, $7->>'channel'), updated_at = $6
 WHERE id = $9 AND NOT $7->>'channel' = ANY (opted_out);

-- @on ContactOptedIn
UPDATE contacts SET opted_out = array_remove(opted_out, $7->>'channel'), updated_at = $6
 WHERE id = $9;

-- @on ContactDeleted
DELETE FROM contacts WHERE id = $9;
DELETE FROM versions WHERE id = $9;

-- The ETag: every event of a contact stream, once per batch and after the handlers above (a batch
-- section below the @on sections runs after them), so a contact created in this batch is there.
-- @batch ContactCreated ContactUpdated ContactStageChanged ContactAssigned ContactTagged
-- @batch ContactUntagged ContactOptedOut ContactOptedIn MessageQueued MessageScheduled
-- @batch MessageScheduleCancelled MessageSent MessageDelivered MessageRead MessageFailed
-- @batch MessageReceived NoteAdded NoteEdited NoteDeleted
UPDATE versions c
   SET version = v.version
  FROM (SELECT id, max(version) AS version
          FROM (SELECT unnest($2) AS stream, unnest($9) AS id, unnest($4) AS version) AS e
         WHERE stream LIKE 'contact-%'
         GROUP BY 1) v
 WHERE c.id = v.id AND c.version < v.version;

-- @deferred
-- Indexes only reads use: a build from position 0 creates them once it has caught up (far
-- cheaper than maintaining them row by row while it catches up); no handler needs them.
CREATE INDEX contacts_page ON contacts (workspace_id, created_at, id);
CREATE INDEX contacts_search ON contacts USING gin (search gin_trgm_ops);
CREATE INDEX contacts_tags ON contacts USING gin (tag_keys);
CREATE INDEX contacts_phones ON contacts USING gin (phones);
CREATE INDEX contacts_emails ON contacts USING gin (emails);
CREATE INDEX contacts_stage ON contacts (workspace_id, stage);
CREATE INDEX contacts_assignee ON contacts (workspace_id, assignee_id);

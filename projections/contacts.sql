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
-- `version` is the contact stream's version, which every event of the stream moves: the ETag.
-- A contact's messages and notes move it too, so it is updated once per batch, after the rest.

CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;

CREATE FUNCTION text_array(jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(array_agg(x), '{}') FROM jsonb_array_elements_text($1) AS x $$;

CREATE FUNCTION lower_array(text[]) RETURNS text[] LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(array_agg(lower(x)), '{}') FROM unnest($1) AS x $$;

CREATE FUNCTION search_text(name text, phones text[], emails text[]) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT lower(concat_ws(' ', name,
                          array_to_string(phones, ' '),
                          array_to_string(ARRAY(SELECT ltrim(p, '+') FROM unnest(phones) AS p), ' '),
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
    version      bigint NOT NULL,
    tag_keys     text[] GENERATED ALWAYS AS (lower_array(tags)) STORED,
    search       text GENERATED ALWAYS AS (search_text(name, phones, emails)) STORED
) WITH (fillfactor = 80);  -- room for the version updates to stay on the page (HOT)
CREATE INDEX contacts_page ON contacts (workspace_id, created_at, id);
CREATE INDEX contacts_search ON contacts USING gin (search gin_trgm_ops);
CREATE INDEX contacts_tags ON contacts USING gin (tag_keys);
CREATE INDEX contacts_phones ON contacts USING gin (phones);
CREATE INDEX contacts_emails ON contacts USING gin (emails);
CREATE INDEX contacts_stage ON contacts (workspace_id, stage);
CREATE INDEX contacts_assignee ON contacts (workspace_id, assignee_id);

-- @on ContactCreated
INSERT INTO contacts (id, workspace_id, name, phones, emails, tags, stage, assignee_id, created_at,
                      created_by, updated_at, version)
VALUES (right($2, 36)::uuid, coalesce($5, ($7->>'workspace_id')::uuid), coalesce($7->>'name', ''),
        text_array($7->'phones'), text_array($7->'emails'), text_array($7->'tags'), $7->>'stage',
        ($7->>'assignee_id')::uuid, ($7->>'created_at')::timestamptz, ($7->>'created_by')::uuid,
        ($7->>'created_at')::timestamptz, $4)
ON CONFLICT (id) DO NOTHING;

-- @on ContactUpdated
-- Only the fields that changed are in the payload.
UPDATE contacts
   SET name = CASE WHEN $7 ? 'name' THEN coalesce($7->>'name', '') ELSE name END,
       phones = CASE WHEN $7 ? 'phones' THEN text_array($7->'phones') ELSE phones END,
       emails = CASE WHEN $7 ? 'emails' THEN text_array($7->'emails') ELSE emails END,
       tags = CASE WHEN $7 ? 'tags' THEN text_array($7->'tags') ELSE tags END,
       updated_at = $6
 WHERE id = right($2, 36)::uuid;

-- @on ContactStageChanged
UPDATE contacts SET stage = $7->>'to', updated_at = $6 WHERE id = right($2, 36)::uuid;

-- @on ContactAssigned
UPDATE contacts SET assignee_id = ($7->>'assignee_id')::uuid, updated_at = $6 WHERE id = right($2, 36)::uuid;

-- @on ContactTagged
UPDATE contacts SET tags = array_append(tags, $7->>'tag'), updated_at = $6
 WHERE id = right($2, 36)::uuid AND NOT lower($7->>'tag') = ANY (tag_keys);

-- @on ContactUntagged
UPDATE contacts SET tags = ARRAY(SELECT t FROM unnest(tags) AS t WHERE lower(t) <> lower($7->>'tag')), updated_at = $6
 WHERE id = right($2, 36)::uuid;

-- @on ContactOptedOut
UPDATE contacts SET opted_out = array_append(opted_out, $7->>'channel'), updated_at = $6
 WHERE id = right($2, 36)::uuid AND NOT $7->>'channel' = ANY (opted_out);

-- @on ContactOptedIn
UPDATE contacts SET opted_out = array_remove(opted_out, $7->>'channel'), updated_at = $6
 WHERE id = right($2, 36)::uuid;

-- @on ContactDeleted
DELETE FROM contacts WHERE id = right($2, 36)::uuid;

-- The ETag: every event of a contact stream, once per batch and after the handlers above (a batch
-- section below the @on sections runs after them), so a contact created in this batch is there.
-- @batch ContactCreated ContactUpdated ContactStageChanged ContactAssigned ContactTagged
-- @batch ContactUntagged ContactOptedOut ContactOptedIn MessageQueued MessageScheduled
-- @batch MessageScheduleCancelled MessageSent MessageDelivered MessageRead MessageFailed
-- @batch MessageReceived NoteAdded NoteEdited NoteDeleted
UPDATE contacts c
   SET version = v.version
  FROM (SELECT right(stream, 36)::uuid AS id, max(version) AS version
          FROM projection_events($1, $2, $3, $4, $5, $6, $7, $8)
         WHERE stream LIKE 'contact-%'
         GROUP BY 1) v
 WHERE c.id = v.id AND c.version < v.version;

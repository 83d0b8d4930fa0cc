-- Workspaces and their settings: GET /v1/workspaces/{ws}, GET /v1/workspaces/{ws}/twilio,
-- GET /v1/workspaces/{ws}/auto-replies.
--
-- `version` is the workspace stream's version: the ETag.  The Twilio columns hold only references
-- (account and key sids, and `twilio_secret_ref` pointing at the sealed secrets), never a secret.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 0.5

CREATE TABLE workspaces (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    default_country       text NOT NULL DEFAULT 'US',
    owner_id              uuid,
    created_at            timestamptz NOT NULL,
    twilio_account_sid    text,
    twilio_api_key_sid    text,
    twilio_twiml_app_sid  text,
    twilio_secret_ref     text,
    twilio_configured_at  timestamptz,
    email_from            text,
    email_from_name       text,
    parking_limit_seconds int NOT NULL DEFAULT 300,
    updated_at            timestamptz NOT NULL,
    version               bigint NOT NULL
);

CREATE TABLE auto_replies (
    workspace_id uuid NOT NULL,
    keyword      text NOT NULL,           -- lower case, one word
    reply        text NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, keyword)
);

-- @on WorkspaceCreated
INSERT INTO workspaces (id, name, default_country, owner_id, created_at, updated_at, version)
VALUES (right($2, 36)::uuid, $7->>'name', coalesce($7->>'default_country', 'US'), ($7->>'owner_id')::uuid,
        ($7->>'created_at')::timestamptz, $6, $4)
ON CONFLICT (id) DO NOTHING;

-- @on WorkspaceRenamed
UPDATE workspaces SET name = $7->>'name' WHERE id = right($2, 36)::uuid;

-- @on DefaultCountryChanged
UPDATE workspaces SET default_country = $7->>'to' WHERE id = right($2, 36)::uuid;

-- @on TwilioConfigured
UPDATE workspaces
   SET twilio_account_sid = $7->>'account_sid', twilio_api_key_sid = $7->>'api_key_sid',
       twilio_twiml_app_sid = $7->>'twiml_app_sid', twilio_secret_ref = $7->>'secret_ref',
       twilio_configured_at = $6
 WHERE id = right($2, 36)::uuid;

-- @on TwilioCleared
UPDATE workspaces
   SET twilio_account_sid = NULL, twilio_api_key_sid = NULL, twilio_twiml_app_sid = NULL,
       twilio_secret_ref = NULL, twilio_configured_at = NULL
 WHERE id = right($2, 36)::uuid;

-- @on EmailSenderSet
UPDATE workspaces SET email_from = $7->>'from', email_from_name = $7->>'from_name' WHERE id = right($2, 36)::uuid;

-- @on EmailSenderCleared
UPDATE workspaces SET email_from = NULL, email_from_name = NULL WHERE id = right($2, 36)::uuid;

-- @on ParkingLimitSet
UPDATE workspaces SET parking_limit_seconds = ($7->>'seconds')::int WHERE id = right($2, 36)::uuid;

-- @on AutoReplyRuleSet
INSERT INTO auto_replies (workspace_id, keyword, reply, updated_at)
VALUES (right($2, 36)::uuid, $7->>'keyword', $7->>'reply', $6)
ON CONFLICT (workspace_id, keyword) DO UPDATE SET reply = excluded.reply, updated_at = excluded.updated_at;

-- @on AutoReplyRuleRemoved
DELETE FROM auto_replies WHERE workspace_id = right($2, 36)::uuid AND keyword = $7->>'keyword';

-- Every event of a workspace stream moves its version (the ETag) and updated_at, once per batch.
-- @batch WorkspaceCreated WorkspaceRenamed DefaultCountryChanged TwilioConfigured TwilioCleared
-- @batch EmailSenderSet EmailSenderCleared ParkingLimitSet AutoReplyRuleSet AutoReplyRuleRemoved MemberAdded
-- @batch PhoneNumberAdded PhoneNumberRemoved PhoneNumberAssigned PipelineStageAdded
-- @batch PipelineStageRemoved MemberRoleChanged MemberRemoved
UPDATE workspaces w
   SET version = v.version, updated_at = v.recorded_at
  FROM (SELECT right(stream, 36)::uuid AS id, max(version) AS version, max(recorded_at) AS recorded_at
          FROM (SELECT unnest($2) AS stream, unnest($4) AS version, unnest($6) AS recorded_at) AS e
         WHERE stream LIKE 'workspace-%'
         GROUP BY 1) v
 WHERE w.id = v.id AND w.version < v.version;

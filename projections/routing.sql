-- Webhook routing: which workspace a Twilio number belongs to (SPEC §7: the `To` number names the
-- workspace, and `AccountSid` must match that workspace's account).
--
--   SELECT n.workspace_id, n.assigned_to, a.account_sid
--     FROM routing.numbers n LEFT JOIN routing.accounts a USING (workspace_id)
--    WHERE n.number = $1;
--
-- `assigned_to` is the member who owns the number (calls ring them first), NULL for the queue.
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 0.3

CREATE TABLE numbers (
    number       text PRIMARY KEY,        -- E.164
    workspace_id uuid NOT NULL,
    sid          text,                    -- Twilio's PN... sid
    assigned_to  uuid,
    added_at     timestamptz NOT NULL
);
CREATE INDEX numbers_workspace ON numbers (workspace_id);

CREATE TABLE accounts (
    workspace_id  uuid PRIMARY KEY,
    account_sid   text NOT NULL,
    api_key_sid   text,
    twiml_app_sid text
);
CREATE UNIQUE INDEX accounts_sid ON accounts (account_sid, workspace_id);

-- @on PhoneNumberAdded
INSERT INTO numbers (number, workspace_id, sid, assigned_to, added_at)
VALUES ($7->>'number', right($2, 36)::uuid, $7->>'sid', ($7->>'assigned_to')::uuid, $6)
ON CONFLICT (number) DO UPDATE
   SET workspace_id = excluded.workspace_id, sid = excluded.sid, assigned_to = excluded.assigned_to,
       added_at = excluded.added_at;

-- @on PhoneNumberRemoved
DELETE FROM numbers WHERE number = $7->>'number' AND workspace_id = right($2, 36)::uuid;

-- @on PhoneNumberAssigned
UPDATE numbers SET assigned_to = ($7->>'assigned_to')::uuid
 WHERE number = $7->>'number' AND workspace_id = right($2, 36)::uuid;

-- @on MemberRemoved
-- The member's numbers go back to the workspace queue.
UPDATE numbers SET assigned_to = NULL
 WHERE workspace_id = right($2, 36)::uuid AND assigned_to = ($7->>'user_id')::uuid;

-- @on TwilioConfigured
INSERT INTO accounts (workspace_id, account_sid, api_key_sid, twiml_app_sid)
VALUES (right($2, 36)::uuid, $7->>'account_sid', $7->>'api_key_sid', $7->>'twiml_app_sid')
ON CONFLICT (workspace_id) DO UPDATE
   SET account_sid = excluded.account_sid, api_key_sid = excluded.api_key_sid,
       twiml_app_sid = excluded.twiml_app_sid;

-- @on TwilioCleared
DELETE FROM numbers
 WHERE workspace_id = right($2, 36)::uuid
   AND number IN (SELECT jsonb_array_elements_text($7->'numbers'));
DELETE FROM accounts WHERE workspace_id = right($2, 36)::uuid;

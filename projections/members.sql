-- Users and workspace members: GET /v1/me, GET /v1/workspaces (the caller's memberships),
-- member lists, and looking a user up by e-mail at login.
--
--   users.users     one row per registered user; `email` is normalised (lower case).
--                   `credential_ref` is the auth module's opaque reference to the sealed password
--                   hash (never a hash itself).
--   members.members one row per (workspace, user) with the role: owner, admin or agent.
--                   "My workspaces": WHERE user_id = $me (the members_user index).
--
-- What it costs, relatively (µs of database time per event of the benchmark's log, see
-- docs/benchmarks.md): the runner balances its partitions by it.
-- @cost 0.3

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    name           text NOT NULL DEFAULT '',
    presence       text NOT NULL DEFAULT 'offline',
    credential_ref text,
    registered_at  timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
-- Not unique: the e-mail claim keeps addresses unique, and a read model must never refuse an event.
CREATE INDEX users_email ON users (email);

CREATE TABLE members (
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL,
    role         text NOT NULL,
    email        text NOT NULL,
    name         text,
    added_at     timestamptz NOT NULL,
    added_by     uuid,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- @on UserRegistered
INSERT INTO users (id, email, name, credential_ref, registered_at, updated_at, version)
VALUES (right($2, 36)::uuid, $7->>'email', coalesce($7->>'name', ''), $7->>'credential_ref',
        ($7->>'registered_at')::timestamptz, $6, $4)
ON CONFLICT (id) DO NOTHING;

-- @on UserProfileUpdated
UPDATE users
   SET name = CASE WHEN $7 ? 'name' THEN coalesce($7->>'name', '') ELSE name END,
       email = CASE WHEN $7 ? 'email' THEN $7->>'email' ELSE email END,
       updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;
UPDATE members
   SET name = CASE WHEN $7 ? 'name' THEN $7->>'name' ELSE name END,
       email = CASE WHEN $7 ? 'email' THEN $7->>'email' ELSE email END
 WHERE user_id = right($2, 36)::uuid;

-- @on UserPresenceChanged
UPDATE users SET presence = $7->>'presence', updated_at = $6, version = $4 WHERE id = right($2, 36)::uuid;

-- @on UserCredentialChanged
UPDATE users SET credential_ref = $7->>'credential_ref', updated_at = $6, version = $4
 WHERE id = right($2, 36)::uuid;

-- @on MemberAdded
INSERT INTO members (workspace_id, user_id, role, email, name, added_at, added_by)
VALUES (right($2, 36)::uuid, ($7->>'user_id')::uuid, $7->>'role', $7->>'email', $7->>'name', $6,
        ($7->>'added_by')::uuid)
ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role;

-- @on MemberRoleChanged
UPDATE members SET role = $7->>'to' WHERE workspace_id = right($2, 36)::uuid AND user_id = ($7->>'user_id')::uuid;

-- @on MemberRemoved
DELETE FROM members WHERE workspace_id = right($2, 36)::uuid AND user_id = ($7->>'user_id')::uuid;

-- Secrets at rest (docs/messaging.md, "Secrets"): Twilio auth tokens and API key secrets, Resend
-- keys, sealed under the master key (libsodium secretbox; src/core/seal.h).  The event log holds
-- only references, "secret:<ref>"; nothing here is readable without the key.
CREATE TABLE secrets (
    ref          uuid        PRIMARY KEY,
    workspace_id uuid,
    kind         text        NOT NULL CHECK (kind ~ '^[a-z0-9_]{1,32}$'),
    key_id       text        NOT NULL,  -- which master key sealed it (a keyed hash, not the key)
    sealed       bytea       NOT NULL CHECK (length(sealed) > 41),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX secrets_workspace ON secrets (workspace_id, kind);

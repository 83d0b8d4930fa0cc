-- The API's own state, kept outside the event log because it is secret or operational:
-- password hashes, sessions, failed logins and idempotency keys.  See docs/api/README.md.

-- Password hashes (argon2id, libsodium's crypto_pwhash_str format).  The log's UserRegistered
-- carries only credential_ref = 'cred:<ref>', a reference to a row here, never the hash.  A row is
-- written before the user is registered and marked active once UserRegistered is stored, so a
-- sign-up that failed half-way never lets anyone log in.
CREATE TABLE auth_credentials (
    ref           uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    email         text NOT NULL,               -- normalised (lower case); login looks users up by it
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- E-mail uniqueness is the claim stream's job (email:<address>); this is the second guard.
CREATE UNIQUE INDEX auth_credentials_email ON auth_credentials (email) WHERE active;
CREATE INDEX auth_credentials_user ON auth_credentials (user_id);

-- Sessions: a bearer token is 32 random bytes; only its SHA-256 is stored.
CREATE TABLE auth_sessions (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at);

-- Failed logins, per account ('user:<email>') and per client address ('addr:<ip>'), for rate
-- limiting across every server process.  Rows older than the window are deleted as new ones come.
CREATE TABLE auth_login_failures (
    key text NOT NULL,
    at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_login_failures_key ON auth_login_failures (key, at);

-- Idempotency-Key: per user, the request's fingerprint and, once answered, the response.
-- status IS NULL while the first request is in flight.  Kept at least 24 hours.
CREATE TABLE api_idempotency (
    user_id      uuid NOT NULL,
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    status       int,
    headers      jsonb,
    body         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);

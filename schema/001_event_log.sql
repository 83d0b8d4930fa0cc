-- The event log: the only source of truth.  See docs/event-log.md.

-- Positions come from this sequence.  CACHE 1 is essential: with a per-session cache a later
-- transaction could draw a smaller number than an earlier one, and readers following the log by
-- position would skip it.  Appenders serialise on the advisory lock taken by sb_lock_log() (and by
-- the trigger below), so positions are drawn, and become visible, in commit order.
CREATE SEQUENCE events_position_seq AS bigint CACHE 1;

CREATE TABLE events (
    position     bigint      NOT NULL DEFAULT nextval('events_position_seq') PRIMARY KEY,
    stream       text        NOT NULL,
    version      bigint      NOT NULL CHECK (version > 0),
    type         text        NOT NULL,
    workspace_id uuid,
    payload      bytea       NOT NULL,  -- msgpack map
    metadata     bytea       NOT NULL,  -- msgpack map: correlation_id, causation_id, user_id, request_id, source
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    category     text        GENERATED ALWAYS AS (split_part(stream, '-', 1)) STORED,
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);
ALTER SEQUENCE events_position_seq OWNED BY events.position;

-- Readers: a stream by version (the unique index above), a workspace by position, a category by
-- position, and time ranges (BRIN: recorded_at grows with position).
CREATE INDEX events_workspace_position ON events (workspace_id, position) WHERE workspace_id IS NOT NULL;
CREATE INDEX events_category_position ON events (category, position);
CREATE INDEX events_recorded_at ON events USING brin (recorded_at);

-- The one lock every append transaction holds until it commits.  Taken explicitly by the appender
-- before its version checks, and again (re-entrantly, for any other writer) by the trigger.
CREATE FUNCTION sb_lock_log() RETURNS void LANGUAGE sql AS
$$ SELECT pg_advisory_xact_lock(7318029347265501) $$;

CREATE FUNCTION events_lock_trigger() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM sb_lock_log(); RETURN NULL; END $$;

CREATE TRIGGER events_serialise BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_lock_trigger();

-- The log is append-only.
CREATE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_immutable();

-- Actor snapshots: the msgpack state of a stream as of a version.
CREATE TABLE snapshots (
    stream     text        PRIMARY KEY,
    version    bigint      NOT NULL,
    position   bigint      NOT NULL,
    state      bytea       NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now()
);

-- Where each follower of the log (projection, reactor) has got to.
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

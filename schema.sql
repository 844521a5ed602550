-- Schema of the messaging service. Applied by `messaging migrate` as the schema's owner, on every
-- start, so every statement is idempotent. The event log is append-only in the database itself:
-- a trigger rejects UPDATE, DELETE and TRUNCATE for every role, and the service's role (the user
-- of MESSAGING_DATABASE_URL) is granted only SELECT and INSERT on it by `migrate`.

-- The roster -------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS schools (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    service_centre  text,
    timezone        text NOT NULL DEFAULT 'America/Toronto',
    features        jsonb NOT NULL DEFAULT '{}'::jsonb,
    closed_days     date[] NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS class_groups (
    id          text PRIMARY KEY,
    school      text NOT NULL REFERENCES schools(id),
    name        text NOT NULL,
    grade       integer,
    active      boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS class_groups_school ON class_groups (school);

CREATE TABLE IF NOT EXISTS users (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('parent', 'staff')),
    name        text NOT NULL,
    email       text,
    locale      text NOT NULL DEFAULT 'fr' CHECK (locale IN ('fr', 'en')),
    active      boolean NOT NULL DEFAULT true,
    -- weekly working periods of staff, {"mon": [["07:30","15:30"]], ...}; null: school default
    working_hours jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staff_roles (
    user_id     text NOT NULL REFERENCES users(id),
    school      text NOT NULL REFERENCES schools(id),
    role        text NOT NULL CHECK (role IN ('teacher', 'office', 'principal', 'daycare', 'support')),
    groups      text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (user_id, school, role)
);
CREATE INDEX IF NOT EXISTS staff_roles_school ON staff_roles (school);

CREATE TABLE IF NOT EXISTS students (
    id          text PRIMARY KEY,
    school      text NOT NULL REFERENCES schools(id),
    name        text NOT NULL,
    grade       integer,
    groups      text[] NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS students_school ON students (school);

CREATE TABLE IF NOT EXISTS parent_children (
    parent      text NOT NULL REFERENCES users(id),
    student     text NOT NULL REFERENCES students(id),
    PRIMARY KEY (parent, student)
);
CREATE INDEX IF NOT EXISTS parent_children_student ON parent_children (student);

-- Conversations and the log ----------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS conversations (
    id          text PRIMARY KEY,
    school      text NOT NULL REFERENCES schools(id),
    kind        text NOT NULL CHECK (kind IN ('direct', 'group', 'broadcast')),
    title       text,
    -- the creator; for a broadcast, its only writer
    owner       text REFERENCES users(id),
    -- the two participants of a direct conversation, sorted, so that the same pair always gets
    -- the same conversation back
    direct_key  text UNIQUE,
    last_seq    bigint NOT NULL DEFAULT 0,
    locked      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversations_school ON conversations (school, created_at);

CREATE TABLE IF NOT EXISTS members (
    conv        text NOT NULL REFERENCES conversations(id),
    user_id     text NOT NULL REFERENCES users(id),
    -- what the member was when they joined: 'staff' or 'parent', and for a broadcast 'sender'
    -- or 'recipient'
    role        text NOT NULL,
    read_seq    bigint NOT NULL DEFAULT 0,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    left_at     timestamptz,
    PRIMARY KEY (conv, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user_id) WHERE left_at IS NULL;

CREATE TABLE IF NOT EXISTS events (
    conv        text NOT NULL REFERENCES conversations(id),
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    actor       text NOT NULL,
    body        text,
    -- kind-specific fields (attachments, reply_to, reason, members, title ...)
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- the message a `deleted` or `removed` event withdraws
    target      bigint,
    cid         text,
    ts          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (conv, seq)
);
-- Added after the first release; columns are only ever added, never rewritten.
-- lang: the language a message was written in (the sender's), for text search;
-- hash: sha256(previous event's hash || canonical event), see messaging/domain/chain.py.
ALTER TABLE events ADD COLUMN IF NOT EXISTS lang text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS hash bytea;
-- the end of the conversation's hash chain, and its last timestamp (timestamps never go back)
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS last_hash bytea;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS last_ts timestamptz;

CREATE UNIQUE INDEX IF NOT EXISTS events_cid ON events (conv, actor, cid) WHERE cid IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_target ON events (conv, target) WHERE target IS NOT NULL;

CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS events_no_update_delete ON events;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
DROP TRIGGER IF EXISTS events_no_truncate ON events;
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- Rights of the service's role are granted by `messaging migrate` (it knows the role's name):
--   SELECT, INSERT on events; SELECT, INSERT, UPDATE on the other tables; nothing else.
REVOKE ALL ON events FROM PUBLIC;

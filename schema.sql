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

-- The log is partitioned by a hash of the conversation: every query of the service names its
-- conversation, so it reads one partition, and each partition's indexes stay small
-- (docs/scaling.md explains the choice). A database created before partitioning keeps its plain
-- table, which behaves the same; docs/operations.md gives the one-time migration.
DO $$
BEGIN
    IF to_regclass('public.events') IS NULL THEN
        CREATE TABLE events (
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
        ) PARTITION BY HASH (conv);
        FOR i IN 0..15 LOOP
            EXECUTE format('CREATE TABLE events_p%s PARTITION OF events'
                           ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
        END LOOP;
    END IF;
END;
$$;
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
-- the audit search's date filters, conversation by conversation of the school, without reading
-- the whole log
CREATE INDEX IF NOT EXISTS events_conv_ts ON events (conv, ts);

-- The facts an append needs, read after taking the conversations' row locks, in one round trip.
-- Inside a function each statement takes a fresh snapshot, so what is read here includes
-- everything committed by whoever held a lock before us (a member's leave, a concurrent cid).
CREATE OR REPLACE FUNCTION append_facts(
    conv_ids text[], cid_convs text[], cid_actors text[], cid_values text[],
    target_convs text[], target_seqs bigint[])
RETURNS TABLE (id text, school text, kind text, locked boolean, last_seq bigint, owner text,
               last_hash bytea, last_ts timestamptz, members text[], stored jsonb,
               targets jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM conversations c WHERE c.id = ANY(conv_ids) ORDER BY c.id FOR NO KEY UPDATE;
    RETURN QUERY
    SELECT c.id, c.school, c.kind, c.locked, c.last_seq, c.owner, c.last_hash, c.last_ts,
        ARRAY(SELECT m.user_id FROM members m WHERE m.conv = c.id AND m.left_at IS NULL),
        (SELECT jsonb_agg(jsonb_build_array(e.actor, e.cid, e.seq, e.ts, e.body))
           FROM events e
           JOIN unnest(cid_convs, cid_actors, cid_values) AS k(conv, actor, cid)
             ON e.conv = k.conv AND e.actor = k.actor AND e.cid = k.cid
          WHERE k.conv = c.id),
        (SELECT jsonb_agg(jsonb_build_array(e.seq, e.kind, e.actor, EXISTS (
                    SELECT 1 FROM events r WHERE r.conv = e.conv AND r.target = e.seq
                       AND r.kind IN ('deleted', 'removed'))))
           FROM events e JOIN unnest(target_convs, target_seqs) AS k(conv, seq)
             ON e.conv = k.conv AND e.seq = k.seq
          WHERE k.conv = c.id)
    FROM conversations c WHERE c.id = ANY(conv_ids);
END;
$$;

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
-- Postgres gives each partition the row trigger above, but not the TRUNCATE one: a TRUNCATE of
-- one partition would not fire it.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'events'::regclass LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                       WHERE tgrelid = part AND tgname = 'events_no_truncate') THEN
            EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()', part);
        END IF;
    END LOOP;
END;
$$;

-- Rights of the service's role are granted by `messaging migrate` (it knows the role's name):
--   SELECT, INSERT on events; SELECT, INSERT, UPDATE on the other tables; nothing else.
REVOKE ALL ON events FROM PUBLIC;

-- The audit trail --------------------------------------------------------------------------------
-- Every audit read (list, view, export, attachment download, the list of reads itself) appends
-- one row here in the same transaction as the read, so that no read happens without its record.
-- Append-only like the log: a trigger refuses UPDATE, DELETE and TRUNCATE for every role, and
-- `migrate` grants the service's role only SELECT and INSERT on it (and USAGE on its sequence).

-- No foreign keys, on purpose: checking one would lock the conversation's row (FOR KEY SHARE)
-- until the audit read commits, holding up every append to it meanwhile (the log locks that row
-- FOR UPDATE), and would fail a REPEATABLE READ audit read when a message arrived during it. The
-- service records only schools and conversations it has just read.
CREATE TABLE IF NOT EXISTS audit_reads (
    id          bigserial PRIMARY KEY,
    school      text NOT NULL,
    -- the token subject: a principal's user id, or an admin subject that is no roster user
    reader      text NOT NULL,
    -- the conversation read; null for a search or the list of reads
    conv        text,
    -- the search's filters (q, from, to, member, cursor) for a list; null otherwise
    search      jsonb,
    action      text NOT NULL,
    -- the client's address as the gateway saw it; null when it is no IP address
    address     inet,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT audit_reads_action
        CHECK (action IN ('list', 'view', 'export_pdf', 'export_json', 'attachment', 'reads'))
);
CREATE INDEX IF NOT EXISTS audit_reads_school ON audit_reads (school, id);

CREATE OR REPLACE FUNCTION audit_reads_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % is not allowed on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_reads_no_update_delete ON audit_reads;
CREATE TRIGGER audit_reads_no_update_delete BEFORE UPDATE OR DELETE ON audit_reads
    FOR EACH ROW EXECUTE FUNCTION audit_reads_append_only();
DROP TRIGGER IF EXISTS audit_reads_no_truncate ON audit_reads;
CREATE TRIGGER audit_reads_no_truncate BEFORE TRUNCATE ON audit_reads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reads_append_only();

-- Rights of the service's role, granted by `migrate`: SELECT, INSERT on audit_reads and USAGE on
-- audit_reads_id_seq; nothing else.
REVOKE ALL ON audit_reads FROM PUBLIC;
REVOKE ALL ON SEQUENCE audit_reads_id_seq FROM PUBLIC;

-- Full-text search of messages, accents ignored: copies of the french and english
-- configurations that pass every word through `unaccent` before stemming. A message is indexed
-- with the configuration of its language (`lang`, the sender's locale; French when unknown).
-- `unaccent` is a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS unaccent;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'messaging_fr'
                   AND cfgnamespace = 'public'::regnamespace) THEN
        CREATE TEXT SEARCH CONFIGURATION public.messaging_fr (COPY = pg_catalog.french);
        ALTER TEXT SEARCH CONFIGURATION public.messaging_fr
            ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'messaging_en'
                   AND cfgnamespace = 'public'::regnamespace) THEN
        CREATE TEXT SEARCH CONFIGURATION public.messaging_en (COPY = pg_catalog.english);
        ALTER TEXT SEARCH CONFIGURATION public.messaging_en
            ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;
    END IF;
END;
$$;

-- The expression must stay identical to messaging/store/audit.py's MESSAGE_TSVECTOR, or the
-- search stops using this index.
CREATE INDEX IF NOT EXISTS events_message_text ON events USING gin (
    to_tsvector(CASE WHEN lang = 'en' THEN 'messaging_en'::regconfig
                     ELSE 'messaging_fr'::regconfig END, coalesce(body, '')))
    WHERE kind = 'message';

-- Attachments ------------------------------------------------------------------------------------
-- An upload is one row; its bytes live in the attachment store (a folder or S3-compatible
-- storage) under `storage_key`, the sha256 of the content, so that the same file sent twice is
-- stored once. Each message that carries an upload adds one `attachment_uses` row, in the
-- transaction that appends the message. Uploads that no message used are deleted after a day
-- (messaging/attachments/cleanup.py), rows and files.

CREATE TABLE IF NOT EXISTS attachments (
    id          text PRIMARY KEY,
    owner       text NOT NULL REFERENCES users(id),
    -- the school of the first conversation it was sent in; null until then
    school      text REFERENCES schools(id),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint NOT NULL CHECK (size > 0),
    type        text NOT NULL CHECK (type IN ('image/jpeg', 'image/png', 'application/pdf',
                    'application/msword',
                    'application/vnd.openxmlformats-officedocument.wordprocessingml.document')),
    -- sanitised: no path, no control characters, the type's own extension
    name        text NOT NULL,
    storage_key text NOT NULL,
    -- a small JPEG of an image or of a PDF's first page; null when there is none
    preview_key text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- when a message first carried it; null: an orphan, deleted after a day
    used_at     timestamptz
);
CREATE INDEX IF NOT EXISTS attachments_orphans ON attachments (created_at) WHERE used_at IS NULL;
CREATE INDEX IF NOT EXISTS attachments_storage_key ON attachments (storage_key);
CREATE INDEX IF NOT EXISTS attachments_owner ON attachments (owner);

CREATE TABLE IF NOT EXISTS attachment_uses (
    attachment  text NOT NULL REFERENCES attachments(id),
    conv        text NOT NULL REFERENCES conversations(id),
    -- the message event that carries it
    seq         bigint NOT NULL,
    PRIMARY KEY (attachment, conv, seq)
);
CREATE INDEX IF NOT EXISTS attachment_uses_conv ON attachment_uses (conv, seq);

-- Rights of the service's role, granted by `migrate`: SELECT, INSERT, UPDATE, DELETE on
-- attachments (DELETE for the orphan cleanup); SELECT, INSERT on attachment_uses.
REVOKE ALL ON attachments, attachment_uses FROM PUBLIC;

-- Broadcasts ------------------------------------------------------------------------------------
-- A bulk send. Sent at once or held until send_at, then it is a conversation of kind broadcast
-- (conv) with one membership row per recipient. Its statistics come from those rows.

CREATE TABLE IF NOT EXISTS broadcasts (
    id              text PRIMARY KEY,
    school          text NOT NULL REFERENCES schools(id),
    sender          text NOT NULL REFERENCES users(id),
    conv            text REFERENCES conversations(id),
    audience        jsonb NOT NULL,
    body            text NOT NULL,
    body_en         text,
    attachments     jsonb NOT NULL DEFAULT '[]'::jsonb,
    replies         text NOT NULL CHECK (replies IN ('private', 'none')),
    send_at         timestamptz,
    state           text NOT NULL CHECK (state IN ('scheduled', 'sent', 'cancelled')),
    idempotency_key text,
    -- at creation (scheduled) or when sent
    recipients      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    cancelled_at    timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS broadcasts_idempotency
    ON broadcasts (sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS broadcasts_due ON broadcasts (send_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS broadcasts_school ON broadcasts (school, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS broadcasts_conv ON broadcasts (conv) WHERE conv IS NOT NULL;

-- when a broadcast's message first reached the member (a live socket, a fetch or a resume)
ALTER TABLE members ADD COLUMN IF NOT EXISTS delivered_at timestamptz;

-- Notifications ----------------------------------------------------------------------------------
-- The outbox of `messaging worker` (docs/notifications.md). A new message adds, in the
-- transaction that appends it, one row per member to be told; the worker merges the pending rows
-- of one recipient and conversation into one notification (e-mail, Web Push). No foreign keys,
-- on purpose: checking one locks the referenced user row, and a broadcast adds 100,000 rows.

CREATE TABLE IF NOT EXISTS notifications (
    id          bigserial PRIMARY KEY,
    recipient   text NOT NULL,
    conv        text NOT NULL,
    -- the message and its sender
    seq         bigint NOT NULL,
    actor       text NOT NULL,
    school      text NOT NULL,
    -- the message's time; the worker sends once created_at + MESSAGING_NOTIFY_DELAY_S has passed
    created_at  timestamptz NOT NULL,
    -- and not before this: the recipient's next working (or awake) instant, or the next retry;
    -- null: held until their schedule changes (no working period ahead)
    not_before  timestamptz,
    -- why it was held when planned: off_hours, quiet_hours, no_working_period; null: not held
    held        text,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'cancelled', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    -- why it was cancelled or failed: read, left, inactive, withdrawn, smtp_refused, ...
    error       text,
    done_at     timestamptz
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (not_before)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (recipient, conv, seq)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notifications_done ON notifications (done_at)
    WHERE state <> 'pending';

-- Every hold and its release, kept so that a school can prove the rule: one row per recipient,
-- conversation and held stretch (open while released_at is null).
CREATE TABLE IF NOT EXISTS notification_holds (
    id           bigserial PRIMARY KEY,
    school       text NOT NULL,
    recipient    text NOT NULL,
    conv         text NOT NULL,
    reason       text NOT NULL
                 CHECK (reason IN ('off_hours', 'quiet_hours', 'no_working_period')),
    held_from    timestamptz NOT NULL,
    -- the planned release; null: until the schedule changes
    held_until   timestamptz,
    replanned_at timestamptz,
    released_at  timestamptz,
    outcome      text CHECK (outcome IN ('sent', 'cancelled', 'failed')),
    -- messages in the notification released (or cancelled)
    messages     integer
);
CREATE UNIQUE INDEX IF NOT EXISTS notification_holds_open ON notification_holds (recipient, conv)
    WHERE released_at IS NULL;
CREATE INDEX IF NOT EXISTS notification_holds_school ON notification_holds (school, id);

-- Each try of each channel: sent, retry (a transient failure), failed, gone (a push
-- subscription the push service no longer knows, removed), skipped (no channel).
CREATE TABLE IF NOT EXISTS notification_deliveries (
    id          bigserial PRIMARY KEY,
    school      text NOT NULL,
    recipient   text NOT NULL,
    conv        text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('email', 'push', 'none')),
    messages    integer NOT NULL,
    attempt     integer NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed', 'gone', 'skipped')),
    error       text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS notification_deliveries_pair
    ON notification_deliveries (recipient, conv, id);

-- Changes of working hours and quiet hours through the API, with the held rows they re-planned.
CREATE TABLE IF NOT EXISTS notification_hours_changes (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('working_hours', 'quiet_hours')),
    hours       jsonb,
    replanned   integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A parent's own quiet hours, {"mon": [["00:00","07:00"], ["21:00","24:00"]], ...}.
CREATE TABLE IF NOT EXISTS notification_prefs (
    user_id     text PRIMARY KEY REFERENCES users(id),
    quiet_hours jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Browsers that subscribed to Web Push (PushSubscription.toJSON()); an endpoint belongs to the
-- user who last registered it.
CREATE TABLE IF NOT EXISTS push_subscriptions (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id),
    endpoint    text NOT NULL UNIQUE,
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_ok_at  timestamptz
);
CREATE INDEX IF NOT EXISTS push_subscriptions_user ON push_subscriptions (user_id);

-- Rights of the service's role, granted by `migrate`: SELECT, INSERT, UPDATE, DELETE on
-- notifications (DELETE for retention) and push_subscriptions; SELECT, INSERT, UPDATE on
-- notification_holds and notification_prefs; SELECT, INSERT on notification_deliveries and
-- notification_hours_changes; USAGE on their sequences.
REVOKE ALL ON notifications, notification_holds, notification_deliveries,
    notification_hours_changes, notification_prefs, push_subscriptions FROM PUBLIC;

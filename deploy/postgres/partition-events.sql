-- The one-time migration of a database whose event log was created before partitioning
-- (docs/operations.md, "Partitioning an existing log"). New databases get a partitioned log
-- from schema.sql itself and never need this.
--
-- Run it as the schema's owner, with every gateway and the worker stopped, then migrate:
--
--   psql "$MESSAGING_MIGRATE_DATABASE_URL" -v ON_ERROR_STOP=1 -f partition-events.sql
--   messaging migrate          # indexes, triggers and the service's rights on the new table
--   messaging verify-log       # every chain intact
--
-- One transaction: it either completes or changes nothing. Every event is copied unchanged
-- (same columns, same timestamps, same hashes) into a table partitioned like schema.sql's; the
-- old table stays, renamed events_unpartitioned and still append-only, with no right left to
-- the service, until you drop it after checking. It takes about as long as copying the log
-- (measure it on a restored backup first).

BEGIN;
LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

ALTER TABLE events RENAME TO events_unpartitioned;
-- index names are per schema: free them for the new table's
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER INDEX IF EXISTS events_cid RENAME TO events_unpartitioned_cid;
ALTER INDEX IF EXISTS events_target RENAME TO events_unpartitioned_target;
ALTER INDEX IF EXISTS events_conv_ts RENAME TO events_unpartitioned_conv_ts;
ALTER INDEX IF EXISTS events_message_text RENAME TO events_unpartitioned_message_text;

CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY HASH (conv);
ALTER TABLE events ADD PRIMARY KEY (conv, seq);
ALTER TABLE events ADD FOREIGN KEY (conv) REFERENCES conversations (id);
DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE events_p%s PARTITION OF events'
                       ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
    END LOOP;
END;
$$;

INSERT INTO events SELECT * FROM events_unpartitioned ORDER BY conv, seq;

-- the service keeps no right on the old copy
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN SELECT DISTINCT g.grantee FROM information_schema.role_table_grants g
                   WHERE g.table_schema = 'public' AND g.table_name = 'events_unpartitioned'
                     AND g.grantee <> current_user LOOP
        IF grantee = 'PUBLIC' THEN
            REVOKE ALL ON events_unpartitioned FROM PUBLIC;
        ELSE
            EXECUTE format('REVOKE ALL ON events_unpartitioned FROM %I', grantee);
        END IF;
    END LOOP;
END;
$$;

COMMIT;

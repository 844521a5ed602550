#!/bin/sh
# Run once by the postgres image on an empty data folder (docker-entrypoint-initdb.d): the
# schema's owner, the service's role (SELECT and INSERT on the log, granted by `messaging
# migrate`) and the database, as messaging/devservices.py sets them up for development.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$MESSAGING_OWNER_DB_PASSWORD" \
    -v app_password="$MESSAGING_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE messaging_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE messaging_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
CREATE DATABASE messaging OWNER messaging_owner ENCODING 'UTF8' TEMPLATE template0;
\connect messaging
ALTER SCHEMA public OWNER TO messaging_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO messaging_app;
SQL

#!/bin/sh
# Runs once, on the first start of an empty data directory (the postgres image's
# /docker-entrypoint-initdb.d). troupe connects as `troupe`, which may log in and create
# databases and nothing more: every service creates its own database on first start
# (processors/runtime/src/db.rs) and owns it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v password="$TROUPE_POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE troupe LOGIN CREATEDB PASSWORD :'password';
SQL

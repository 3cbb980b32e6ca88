#!/usr/bin/env bash
# Run by the postgres image's entrypoint once, when db's data directory is initialised
# (docker/compose.yaml mounts this directory at /docker-entrypoint-initdb.d): the role that
# streaming replicas (db-replica, profile cluster) connect as, and the pg_hba line that lets it in
# from the compose network with a password. Nothing else may replicate.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -X --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set pw="${REPLICATION_PASSWORD:?}" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"

#!/usr/bin/env bash
# Entrypoint of db-replica (docker/compose.yaml, profile cluster): a streaming replica of
# $PRIMARY_HOST. On the first start (an empty data directory) it copies the primary with
# pg_basebackup -R, which also writes the connection to the primary (primary_conninfo, with the
# password) into postgresql.auto.conf and creates standby.signal; then, as on every start, it
# hands over to the postgres image's own entrypoint, which finds the data directory made, skips
# initdb and starts the server as a hot standby. Arguments: the server's command line.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  # The primary is healthy before this starts (depends_on), but its first start restarts the
  # server once after initialisation: a few tries, then give up and let the restart policy retry.
  for try in 1 2 3 4 5; do
    if PGPASSWORD=$REPLICATION_PASSWORD gosu postgres pg_basebackup -h "$PRIMARY_HOST" \
      -U "$REPLICATION_USER" -D "$PGDATA" -R -X stream --checkpoint=fast; then
      break
    fi
    # A half-made copy is no replica: empty the directory before trying again.
    find "$PGDATA" -mindepth 1 -delete
    [ "$try" = 5 ] && exit 1
    sleep 3
  done
fi
exec docker-entrypoint.sh "$@"

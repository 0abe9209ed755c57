#!/usr/bin/env bash
# The official PostgreSQL image's start, for what the platform's compose file uses: on an empty
# PGDATA, initdb with POSTGRES_USER and POSTGRES_PASSWORD (password logins over the network), then the
# scripts of /docker-entrypoint-initdb.d against a server that listens on its socket alone; then the
# server itself, listening on every address.
set -euo pipefail
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    pg_ctl --silent --wait --options "-c listen_addresses=''" start
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "postgres-entrypoint: running $script"; bash "$script" ;;
            *.sql) echo "postgres-entrypoint: running $script"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -f "$script" ;;
        esac
    done
    pg_ctl --silent --wait --mode=fast stop
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"

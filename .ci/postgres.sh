#!/usr/bin/env bash
# A throwaway PostgreSQL server on a loopback port for the metadata-store contract tests.
#   source .ci/postgres.sh && pg_start    -> exports RETRAINER_TEST_PG_URL
#   pg_stop                               -> stops the server and deletes its data
# Installs Debian's postgresql package when no server binaries are present.

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_start() {
  local bin
  bin=$(pg_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "[ci] installing PostgreSQL from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
  fi
  PG_DATA=$(mktemp -d /tmp/retrainer-pg.XXXXXX)
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_DATA"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$PG_DATA/db" -U retrainer --auth=trust >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$PG_DATA/db" -l "$PG_DATA/db/server.log" -w \
    -o "-p $PG_PORT -k $PG_DATA/db -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_CTL=("${as[@]}" "$bin/pg_ctl")
  export RETRAINER_TEST_PG_URL="postgresql+psycopg://retrainer@127.0.0.1:$PG_PORT/postgres"
  echo "[ci] PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  if [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA/db" ]; then
    "${PG_CTL[@]}" -D "$PG_DATA/db" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PG_DATA"
  fi
}

#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests and for trying several nodes locally: initdb into a temp folder (as
# the unprivileged user "postgres"), listening on 127.0.0.1 only, on a free port. Installs Debian's postgresql when
# it is missing (as root).
#
#   scripts/services/postgres.sh start DIR [PORT]   prints the Npgsql connection string on stdout (also in DIR/env)
#   scripts/services/postgres.sh stop DIR           stops that cluster and removes DIR
# With OWNER_PID set, start also leaves a watcher that stops the cluster and removes DIR once that process has ended.
# PG_DURABLE=1 keeps PostgreSQL's own durability (fsync, synchronous commit) for measurements; the tests turn it off.
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1 dir=$2
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb ]] && { echo "$d"; return; }; done
  return 1
}

install_postgres() { bin_dir >/dev/null || debian_install postgresql postgresql; }

stop() {
  local bin
  bin=$(bin_dir) || return 0
  if [[ -d $dir/data ]]; then
    if [[ $(id -u) -eq 0 ]]; then su -s /bin/sh postgres -c "'$bin/pg_ctl' -D '$dir/data' -m immediate stop" >/dev/null 2>&1 || true
    else "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
  fi
  rm -rf "$dir"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

case $cmd in
  start)
    install_postgres
    bin=$(bin_dir)
    port=${3:-$(free_port)}
    user=postgres
    id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
    rm -rf "$dir" && mkdir -p "$dir/data" "$dir/run"
    chown -R "$user" "$dir"
    run() { if [[ $(id -u) -eq 0 ]]; then su -s /bin/sh "$user" -c "$*"; else sh -c "$*"; fi; }
    run "'$bin/initdb' -D '$dir/data' -U postgres -A trust --no-sync -E UTF8 >'$dir/initdb.log' 2>&1"
    # Test cluster: loopback only, a socket in the folder; PostgreSQL's own durability off unless PG_DURABLE=1 (the
    # cluster is thrown away; ChunkUpload's guarantees are about ChunkUpload being killed, not PostgreSQL).
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [[ ${PG_DURABLE:-0} == 1 ]] && durability=""
    run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/postgres.log' -w -t 60 -o \"-p $port -k '$dir/run' -c listen_addresses=127.0.0.1 $durability -c max_connections=300\" start >/dev/null"
    run "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres chunkupload"
    conn="Host=127.0.0.1;Port=$port;Username=postgres;Database=chunkupload;Pooling=true;Maximum Pool Size=50"
    echo "$conn" > "$dir/env"
    echo "$conn"
    leave_watcher
    ;;
  stop) stop ;;
  watch) [[ $# -eq 3 ]] || usage; watch_owner "$3" ;; # internal: DIR OWNER_PID (see common.sh)
  *) usage ;;
esac

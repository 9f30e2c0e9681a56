#!/usr/bin/env bash
# A throw-away S3-compatible object store for the tests and for trying several nodes locally: Ceph's RADOS Gateway
# (Debian 12's ceph 16.2), one monitor, one OSD (memstore, or bluestore on a sparse file) and one gateway, all on
# 127.0.0.1 and everything inside DIR (see ../shared/S3-SERVERS.md for why each setting is there). Installs the
# Debian packages when they are missing (as root). About 15 s to a working S3 endpoint.
#
#   scripts/services/rgw.sh start DIR   prints S3__ServiceUrl=..., S3__AccessKey=..., S3__SecretKey=... (also DIR/env)
#   scripts/services/rgw.sh stop DIR    stops the daemons it started (by PID) and removes DIR
# With OWNER_PID set, start also leaves a watcher that stops the daemons and removes DIR once that process has ended
# (the tests' host may be ended before its exit handlers finish: nothing is left running or on disk after it).
# Environment: RGW_PORT (free port), MON_PORT (free port), OSD_STORE (memstore|bluestore, default bluestore),
#              OSD_BYTES (default 8 GiB, sparse), S3_ACCESS_KEY / S3_SECRET_KEY (chunkupload / chunkupload-secret)
set -euo pipefail

usage() { echo "usage: $0 start DIR | stop DIR" >&2; exit 2; }
[[ $# -eq 2 || ( $# -eq 3 && $1 == watch ) ]] || usage
cmd=$1 dir=$2
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

free_port() {
  # Ports 6800-7300 are the OSD's: keep out of them.
  python3 -c 'import socket
while True:
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close()
    if not 6800 <= p <= 7300: print(p); break'
}

install_ceph() {
  if ! command -v radosgw >/dev/null 2>&1 || ! command -v ceph-osd >/dev/null 2>&1 || ! command -v ceph-mon >/dev/null 2>&1; then
    debian_install ceph radosgw ceph-mon ceph-osd
  fi
}

wait_for() { # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then echo "rgw.sh: $what did not come up in ${seconds}s (logs in $dir/log)" >&2; return 1; fi
    sleep 0.3
  done
}

stop() {
  for name in rgw osd mon; do
    if [[ -f $dir/$name.pid ]]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

case $cmd in
  start)
    install_ceph
    stop
    mkdir -p "$dir"/{run,log,crash,rgw,mon.a,osd.0}
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mon_port=${MON_PORT:-$(free_port)}
    rgw_port=${RGW_PORT:-$(free_port)}
    store=${OSD_STORE:-bluestore}
    bytes=${OSD_BYTES:-8589934592}
    access=${S3_ACCESS_KEY:-chunkupload}
    secret=${S3_SECRET_KEY:-chunkupload-secret}
    conf=$dir/ceph.conf
    cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $dir/crash
mon data = $dir/mon.\$id
osd data = $dir/osd.\$id
osd objectstore = $store
memstore device bytes = $bytes
bluestore block path = $dir/osd.\$id/block.file
bluestore block size = $bytes
bluestore block create = true
bluestore fsck on mount = false
bluestore cache size = 134217728
osd memory target = 939524096
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = true
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
osd op num shards = 2
osd op num threads per shard = 1
ms bind ipv4 = true
ms bind ipv6 = false

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
auth client required = none
ms mon client mode = crc
keyring = $dir/rgw/keyring
rgw data = $dir/rgw
rgw thread pool size = 64
rgw dns name = localhost
rgw enable usage log = false
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" >/dev/null 2>&1
    ceph-mon -c "$conf" -i a -f >>"$dir/log/mon.out" 2>&1 &
    echo $! > "$dir/mon.pid"
    wait_for 30 "the monitor" ceph -c "$conf" --connect-timeout 2 mon stat
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph -c "$conf" osd new "$uuid" >/dev/null
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
    ceph-osd -c "$conf" -i 0 -f >>"$dir/log/osd.out" 2>&1 &
    echo $! > "$dir/osd.pid"
    wait_for 60 "the OSD" sh -c "ceph -c '$conf' osd dump 2>/dev/null | grep -q '^osd.0 up'"
    radosgw -c "$conf" -n client.rgw.a -f >>"$dir/log/rgw.out" 2>&1 &
    echo $! > "$dir/rgw.pid"
    wait_for 90 "the gateway" curl -sf "http://127.0.0.1:$rgw_port/"
    radosgw-admin -c "$conf" -n client.admin user create --uid=chunkupload --display-name=chunkupload \
      --access-key="$access" --secret-key="$secret" >/dev/null
    {
      echo "S3__ServiceUrl=http://127.0.0.1:$rgw_port"
      echo "S3__AccessKey=$access"
      echo "S3__SecretKey=$secret"
    } | tee "$dir/env"
    leave_watcher
    ;;
  stop) stop ;;
  watch) watch_owner "$3" ;; # internal: DIR OWNER_PID (see common.sh)
  *) usage ;;
esac

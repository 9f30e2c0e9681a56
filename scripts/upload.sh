#!/usr/bin/env bash
# Resumable upload of one file to a ChunkUpload server with curl, the way resumable.js does it.
# Requires bash 4.3+, curl and coreutils only.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: upload.sh [options] FILE [BASE_URL]

Uploads FILE to a ChunkUpload server in chunks, exactly as resumable.js splits it, and can be
interrupted (Ctrl-C, kill, lost network) and run again: chunks already on the server are skipped.
At the end it waits for the server to assemble the file and compares the server's SHA-256 with
the local one.

BASE_URL defaults to $CHUNKUPLOAD_URL, else http://localhost:5080.

Options:
  -j, --jobs N          chunks sent in parallel (default: the server's simultaneousUploads, else 4)
  -c, --chunk-size N    chunk size in bytes (default: the server's recommended chunkSize from GET /config;
                        an upload that already exists on the server keeps its own chunk size)
  -r, --retries N       attempts per chunk for transient errors (network, 503, 507; default 10)
  -t, --timeout S       seconds to wait for the server to finish the file (default 600)
  -l, --limit-rate R    cap each chunk request's speed (curl syntax: 500K, 2M), to leave room on a shared line
  -q, --quiet           no progress output
  -h, --help            this help

Exit status: 0 when the file is on the server and its SHA-256 matches, 1 on any failure,
2 on wrong usage, 3 when the server's SHA-256 differs from the local file's.

Examples:
  scripts/upload.sh film.mkv
  scripts/upload.sh -j 8 film.mkv https://upload.example.org
  CHUNKUPLOAD_URL=http://127.0.0.1:5080 scripts/upload.sh -c 4194304 backup.tar
EOF
}

die() { printf 'upload.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'upload.sh: %s\nTry "upload.sh --help".\n' "$*" >&2; exit 2; }

jobs_opt="" chunk_opt="" retries=10 timeout=600 quiet=0 limit_rate=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -j|--jobs) [ $# -ge 2 ] || usage_error "$1 needs a value"; jobs_opt=$2; shift 2 ;;
    --jobs=*) jobs_opt=${1#*=}; shift ;;
    -c|--chunk-size) [ $# -ge 2 ] || usage_error "$1 needs a value"; chunk_opt=$2; shift 2 ;;
    --chunk-size=*) chunk_opt=${1#*=}; shift ;;
    -r|--retries) [ $# -ge 2 ] || usage_error "$1 needs a value"; retries=$2; shift 2 ;;
    -t|--timeout) [ $# -ge 2 ] || usage_error "$1 needs a value"; timeout=$2; shift 2 ;;
    -l|--limit-rate) [ $# -ge 2 ] || usage_error "$1 needs a value"; limit_rate=$2; shift 2 ;;
    -q|--quiet) quiet=1; shift ;;
    --) shift; args+=("$@"); break ;;
    -?*) usage_error "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 1 ] && [ ${#args[@]} -le 2 ] || usage_error "expected FILE [BASE_URL]"
file=${args[0]}
base=${args[1]:-${CHUNKUPLOAD_URL:-http://localhost:5080}}
base=${base%/}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
[ -z "$jobs_opt" ] || { is_uint "$jobs_opt" && [ "$jobs_opt" -ge 1 ]; } || usage_error "--jobs must be a positive number"
[ -z "$chunk_opt" ] || { is_uint "$chunk_opt" && [ "$chunk_opt" -ge 1 ]; } || usage_error "--chunk-size must be a positive number of bytes"
is_uint "$retries" && [ "$retries" -ge 1 ] || usage_error "--retries must be a positive number"
is_uint "$timeout" || usage_error "--timeout must be a number of seconds"
[ -z "$limit_rate" ] || [[ $limit_rate =~ ^[0-9]+[kKmMgG]?$ ]] || usage_error "--limit-rate must look like 500K or 2M"
[ -f "$file" ] || die "$file: no such file"
[ -r "$file" ] || die "$file: not readable"

log() { [ "$quiet" = 1 ] || printf '%s\n' "$*" >&2; }

# urlencode, json_number, json_string
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
problem_detail() {
  local d; d=$(json_string "$1" detail) || d=$(json_string "$1" title) || d=""
  printf '%s' "${d:-$2}"
}
human() {
  local n=$1 u=(B KiB MiB GiB TiB) i=0 whole frac
  while [ "$n" -ge 1048576 ] && [ $i -lt 3 ]; do n=$(( n / 1024 )); i=$(( i + 1 )); done
  if [ "$n" -ge 1024 ]; then whole=$(( n / 1024 )); frac=$(( (n % 1024) * 10 / 1024 )); printf '%s.%s %s' "$whole" "$frac" "${u[i+1]}"
  else printf '%s %s' "$n" "${u[i]}"; fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chunkupload.XXXXXX") || die "cannot create a temporary directory"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log ""; log "interrupted: run the same command again to continue"; exit 130' INT TERM

CURL=(curl --silent --show-error --connect-timeout 10 --globoff)

# http METHOD URL [curl args...]: sets $code, $body, $headers (files in $tmp per call site).
http() {
  local method=$1 url=$2; shift 2
  local out="$tmp/body.$BASHPID" hdr="$tmp/hdr.$BASHPID"
  code=$("${CURL[@]}" -X "$method" -o "$out" -D "$hdr" -w '%{http_code}' "$@" "$url" 2>"$tmp/err.$BASHPID") || code=000
  body=$(cat "$out" 2>/dev/null)
  headers=$(cat "$hdr" 2>/dev/null)
  curl_error=$(cat "$tmp/err.$BASHPID" 2>/dev/null)
  rm -f "$out" "$hdr" "$tmp/err.$BASHPID"
}

# ---------- what the server wants ----------
http GET "$base/config"
[ "$code" = 200 ] || die "cannot read $base/config (HTTP $code${curl_error:+: $curl_error}). Is the server running at $base?"
server_chunk=$(json_number "$body" chunkSize) || die "unexpected /config answer: $body"
server_jobs=$(json_number "$body" simultaneousUploads) || server_jobs=4
max_file=$(json_number "$body" maxFileSize) || max_file=0

size=$(stat -c %s -- "$file") || die "cannot read the size of $file"
name=${file##*/}
# resumable.js's default identifier: size-relativePath with every char outside [0-9a-zA-Z_-] removed.
id_of() { local LC_ALL=C n=$2; printf '%s-%s' "$1" "${n//[^0-9a-zA-Z_-]/}"; }
id=$(id_of "$size" "$name")
jobs=${jobs_opt:-$server_jobs}
chunk=${chunk_opt:-$server_chunk}
[ "$max_file" -le 0 ] || [ "$size" -le "$max_file" ] || die "$name is $(human "$size"); the server accepts files up to $(human "$max_file")"

# An upload that is already on the server keeps the chunk size it was started with.
http GET "$base/uploads/$(urlencode "$id")"
if [ "$code" = 200 ]; then
  existing=$(json_number "$body" chunkSize) || existing=""
  if [ -n "$existing" ] && [ "$existing" != "$chunk" ]; then
    [ -z "$chunk_opt" ] || log "note: the server already has part of this upload with chunk size $existing; using that"
    chunk=$existing
  fi
fi

total=$(( size / chunk )); [ "$total" -ge 1 ] || total=1
log "uploading $name ($(human "$size")) to $base as $id: $total chunk(s) of $(human "$chunk"), $jobs at a time"

q_common="resumableChunkSize=$chunk&resumableTotalSize=$size&resumableType=&resumableIdentifier=$(urlencode "$id")&resumableFilename=$(urlencode "$name")&resumableRelativePath=$(urlencode "$name")&resumableTotalChunks=$total"

# send_chunk N: test GET, then POST if missing, retrying transient failures. Writes its outcome to $tmp/done.N.
send_chunk() {
  local n=$1 start len attempt=1 delay=1 retry_after q
  start=$(( (n - 1) * chunk ))
  if [ "$n" -eq "$total" ]; then len=$(( size - start )); else len=$chunk; fi
  q="resumableChunkNumber=$n&resumableCurrentChunkSize=$len&$q_common"
  while :; do
    http GET "$base/upload?$q"
    case "$code" in
      200|201) echo "skipped $len" > "$tmp/done.$n"; return 0 ;;
      204) ;;
      400|401|403|404|409|415)
        echo "fail HTTP $code: $(problem_detail "$body" "the server refused chunk $n")" > "$tmp/done.$n"; return 1 ;;
    esac
    if [ "$code" = 204 ]; then
      # octet mode: the raw chunk as the body, parameters in the query string
      http POST "$base/upload?$q" ${limit_rate:+--limit-rate "$limit_rate"} -H 'Content-Type: application/octet-stream' --data-binary @<(
        dd if="$file" iflag=skip_bytes,count_bytes skip="$start" count="$len" bs=1M status=none)
      case "$code" in
        200|201) echo "sent $len" > "$tmp/done.$n"; return 0 ;;
        400|401|403|404|409|413|415|500|501)
          echo "fail HTTP $code: $(problem_detail "$body" "the server refused chunk $n")" > "$tmp/done.$n"; return 1 ;;
      esac
    fi
    if [ "$attempt" -ge "$retries" ]; then
      echo "fail chunk $n: gave up after $attempt attempts (last: HTTP $code${curl_error:+, $curl_error})" > "$tmp/done.$n"; return 1
    fi
    retry_after=""
    [[ $headers =~ [Rr]etry-[Aa]fter:[[:space:]]*([0-9]+) ]] && retry_after=${BASH_REMATCH[1]}
    local wait=$delay
    [ -n "$retry_after" ] && [ "$retry_after" -gt "$wait" ] && wait=$retry_after
    [ "$wait" -le 300 ] || wait=300
    printf 'chunk %s: HTTP %s%s, retrying in %s s\n' "$n" "$code" \
      "$([ "$code" = 000 ] && printf ' (%s)' "${curl_error:-network error}" || printf ': %s' "$(problem_detail "$body" "")")" "$wait" >&2
    sleep "$wait"
    attempt=$(( attempt + 1 )); delay=$(( delay * 2 )); [ "$delay" -le 30 ] || delay=30
  done
}

started=$(date +%s)
progress() {
  [ "$quiet" = 1 ] && return
  local done=0 bytes=0 sent=0 f kind len elapsed rate
  for f in "$tmp"/done.*; do
    [ -e "$f" ] || continue
    read -r kind len _ < "$f"
    case "$kind" in sent) sent=$(( sent + len )); bytes=$(( bytes + len )); done=$(( done + 1 )) ;;
                    skipped) bytes=$(( bytes + len )); done=$(( done + 1 )) ;; esac
  done
  elapsed=$(( $(date +%s) - started )); [ "$elapsed" -ge 1 ] || elapsed=1
  rate=$(( sent / elapsed ))
  local pct=100; [ "$size" -gt 0 ] && pct=$(( bytes * 100 / size ))
  local line; line=$(printf '%3s%%  %s/%s chunks  %s of %s  %s/s' "$pct" "$done" "$total" "$(human "$bytes")" "$(human "$size")" "$(human "$rate")")
  if [ -t 2 ]; then printf '\r%s   ' "$line" >&2; else printf '%s\n' "$line" >&2; fi
}

# ---------- send, N at a time ----------
failed=0
running=0
last_report=0
for (( n = 1; n <= total; n++ )); do
  while [ "$running" -ge "$jobs" ]; do
    wait -n 2>/dev/null; running=$(( running - 1 ))
    now=$(date +%s); if [ "$now" -ne "$last_report" ]; then progress; last_report=$now; fi
  done
  send_chunk "$n" & pids+=($!)
  running=$(( running + 1 ))
done
while [ "$running" -gt 0 ]; do
  wait -n 2>/dev/null; running=$(( running - 1 ))
  now=$(date +%s); if [ "$now" -ne "$last_report" ]; then progress; last_report=$now; fi
done
pids=()
progress
[ "$quiet" = 1 ] || { [ -t 2 ] && printf '\n' >&2; }

sent_count=0 skipped_count=0
for (( n = 1; n <= total; n++ )); do
  if [ ! -e "$tmp/done.$n" ]; then failed=1; printf 'upload.sh: chunk %s: no result\n' "$n" >&2; continue; fi
  read -r kind rest < "$tmp/done.$n"
  case "$kind" in
    sent) sent_count=$(( sent_count + 1 )) ;;
    skipped) skipped_count=$(( skipped_count + 1 )) ;;
    *) failed=1; printf 'upload.sh: %s\n' "$rest" >&2 ;;
  esac
done
log "chunks sent: $sent_count, already on the server: $skipped_count"
[ "$failed" = 0 ] || die "upload incomplete; run the same command again to continue"

# ---------- wait for the server to assemble, then compare SHA-256 ----------
local_sha=$(sha256sum -- "$file") || die "cannot hash $file"
local_sha=${local_sha%% *}
deadline=$(( $(date +%s) + timeout ))
pause=0.2
while :; do
  http GET "$base/uploads/$(urlencode "$id")"
  if [ "$code" = 200 ]; then
    state=$(json_string "$body" state) || state=""
    case "$state" in
      complete) break ;;
      failed) die "the server could not assemble $name; run again to retry" ;;
    esac
  elif [ "$code" = 404 ]; then
    die "the server no longer knows upload $id (deleted or expired); run again to start over"
  fi
  [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for the server to finish $name (last state: ${state:-HTTP $code})"
  sleep "$pause"
  case "$pause" in 0.2) pause=0.5 ;; 0.5) pause=1 ;; *) pause=2 ;; esac
done
server_sha=$(json_string "$body" sha256) || server_sha=""
if [ "$server_sha" != "$local_sha" ]; then
  printf 'upload.sh: SHA-256 MISMATCH for %s\n  local:  %s\n  server: %s\n' "$name" "$local_sha" "${server_sha:-none}" >&2
  exit 3
fi
log "complete: $name"
log "sha256 $local_sha (matches the server)"
log "download: $base/files/$(urlencode "$id")"
printf '%s\n' "$id"

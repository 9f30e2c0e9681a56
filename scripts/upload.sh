#!/usr/bin/env bash
# Resumable upload of one file to a ChunkUpload server with curl, the way resumable.js does it, or over tus 1.0.0,
# the Google-style resumable protocol, the nginx upload module's resumable mode or javascript.info's append.
# Requires bash 4.3+, curl and coreutils only.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: upload.sh [options] FILE [BASE_URL]

Uploads FILE to a ChunkUpload server in chunks, exactly as resumable.js splits it, and can be
interrupted (Ctrl-C, kill, lost network) and run again: chunks already on the server are skipped.
At the end it waits for the server to assemble the file and compares the server's SHA-256 with
the local one.

--protocol picks another way to send the file; each goes on from what the server has stored (a
request cut off half-way keeps its stored part; an nginx segment counts whole or not at all):
  tus      tus 1.0.0 at BASE_URL/tus: creates an upload (POST), then PATCHes the file in order from
           the offset the server reports (HEAD), one chunk per PATCH or the whole rest in one.
  google   Google-style resumable at BASE_URL/upload/NAME: initiates (POST ?uploadType=resumable),
           then PUTs the file in order with Content-Range: bytes a-b/total, one chunk per PUT or the
           whole rest in one; after a failure it asks (PUT, Content-Range: bytes */total) and goes on
           from the 308's Range.
  nginx    the nginx upload module's resumable mode at BASE_URL/nginx-upload: POSTs segments of the
           chunk size with Session-ID and X-Content-Range, several at a time; a run sends only the
           ranges the server lacks (its stored ranges, then the range list of each 201).
  append   javascript.info's append at BASE_URL/append: asks how many bytes are stored (GET
           /append/status), then POSTs the rest of the file from there (X-Start-Byte) in one request.
These keep the upload's id (and URL) in a small state file named after the file's path, size and
modification time, so a killed run is continued by the same command; it is removed once the
upload is verified, and a changed file starts a new upload. Ids come from the file (MTIME in
milliseconds): SIZE-MTIME-NAME is the name in google's /upload/NAME, nginx's Session-ID is
resumable.js's identifier SIZE-NAME (only [0-9a-zA-Z_-] kept) plus -MTIME, and append's X-File-Id
is NAME-SIZE-MTIME (javascript.info's name-size-lastModified).

BASE_URL defaults to $CHUNKUPLOAD_URL, else http://localhost:5080.

Options:
  -p, --protocol P      resumable (default: resumable.js chunks, several at a time), tus, google,
                        nginx or append
  -j, --jobs N          requests in parallel (default: the server's simultaneousUploads, else 4): resumable
                        chunks and nginx segments; tus, google and append send in order
  -c, --chunk-size N    chunk size in bytes (default: the server's recommended chunkSize from GET /config;
                        a resumable upload that already exists on the server keeps its own chunk size;
                        tus and google: the most bytes one PATCH or PUT carries; nginx: the segment
                        size; append always sends the rest in one POST)
      --one-request     tus and google: send the rest of the file in one PATCH or PUT (as tus-js-client
                        and Google's client libraries do by default); --one-patch is the same
      --state-dir DIR   where upload ids are kept between runs (all but resumable; default
                        $CHUNKUPLOAD_STATE_DIR, else ${XDG_STATE_HOME:-~/.local/state}/chunkupload)
  -r, --retries N       attempts per chunk (tus, google, append: per request that makes no progress) for
                        transient errors (network, 5xx, 423, 429, 507; default 10)
  -t, --timeout S       seconds to wait for the server to finish the file (default 600)
  -l, --limit-rate R    cap each request's speed (curl syntax: 500K, 2M), to leave room on a shared line
  -q, --quiet           no progress output
  -h, --help            this help

Exit status: 0 when the file is on the server and its SHA-256 matches, 1 on any failure,
2 on wrong usage, 3 when the server's SHA-256 differs from the local file's.

Examples:
  scripts/upload.sh film.mkv
  scripts/upload.sh -j 8 film.mkv https://upload.example.org
  CHUNKUPLOAD_URL=http://127.0.0.1:5080 scripts/upload.sh -c 4194304 backup.tar
  scripts/upload.sh --protocol tus --limit-rate 2M film.mkv    # killed? the same command continues
  scripts/upload.sh --protocol google -c 16777216 film.mkv     # PUTs of 16 MiB with Content-Range
  scripts/upload.sh --protocol nginx -j 6 film.mkv             # 6 segments at a time
  scripts/upload.sh --protocol append film.mkv                 # the rest of the file in one POST
EOF
}

die() { printf 'upload.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'upload.sh: %s\nTry "upload.sh --help".\n' "$*" >&2; exit 2; }

jobs_opt="" chunk_opt="" retries=10 timeout=600 quiet=0 limit_rate="" protocol=resumable one_request=0
state_dir=${CHUNKUPLOAD_STATE_DIR:-${XDG_STATE_HOME:-${HOME:-.}/.local/state}/chunkupload}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -p|--protocol) [ $# -ge 2 ] || usage_error "$1 needs a value"; protocol=$2; shift 2 ;;
    --protocol=*) protocol=${1#*=}; shift ;;
    --one-request|--one-patch) one_request=1; shift ;;
    --state-dir) [ $# -ge 2 ] || usage_error "$1 needs a value"; state_dir=$2; shift 2 ;;
    --state-dir=*) state_dir=${1#*=}; shift ;;
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
case "$protocol" in resumable|tus|google|nginx|append) ;; *) usage_error "--protocol must be resumable, tus, google, nginx or append" ;; esac
case "$one_request,$protocol" in 0,*|1,tus|1,google) ;; *) usage_error "--one-request (--one-patch) needs --protocol tus or google" ;; esac
[ -n "$state_dir" ] || usage_error "--state-dir must name a directory"
[ -z "$jobs_opt" ] || { is_uint "$jobs_opt" && [ "$jobs_opt" -ge 1 ]; } || usage_error "--jobs must be a positive number"
[ -z "$chunk_opt" ] || { is_uint "$chunk_opt" && [ "$chunk_opt" -ge 1 ]; } || usage_error "--chunk-size must be a positive number of bytes"
is_uint "$retries" && [ "$retries" -ge 1 ] || usage_error "--retries must be a positive number"
is_uint "$timeout" || usage_error "--timeout must be a number of seconds"
[ -z "$limit_rate" ] || [[ $limit_rate =~ ^[0-9]+[kKmMgG]?$ ]] || usage_error "--limit-rate must look like 500K or 2M"
[ -f "$file" ] || die "$file: no such file"
[ -r "$file" ] || die "$file: not readable"

log() { [ "$quiet" = 1 ] || printf '%s\n' "$*" >&2; }

# urlencode, json_number, json_string, json_escape
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# problem_detail BODY FALLBACK: the sentence of a refusal: problem+json's detail, Google's error message, or the first
# line of a text/plain refusal ("code: detail", nginx and append).
problem_detail() {
  local d
  case "$1" in
    '{'*) d=$(json_string "$1" detail) || d=$(json_string "$1" message) || d=$(json_string "$1" title) || d="" ;;
    *) d=${1%%$'\n'*}; d=${d:0:300} ;;
  esac
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
  local out="$tmp/body.$BASHPID" hdr="$tmp/hdr.$BASHPID" err="$tmp/err.$BASHPID"
  code=$("${CURL[@]}" -X "$method" -o "$out" -D "$hdr" -w '%{http_code}' "$@" "$url" 2>"$err") || code=000
  body=$(cat "$out" 2>/dev/null)
  headers=$(cat "$hdr" 2>/dev/null)
  curl_error=$(cat "$err" 2>/dev/null)
  rm -f "$out" "$hdr" "$err"
}

# ---------- wait for the server to assemble, then compare SHA-256 ----------
# verify_on_server: waits until upload $id is complete, compares its SHA-256 with the file's and prints $id.
verify_on_server() {
  local local_sha deadline pause=0.2 state="" server_sha
  local_sha=$(sha256sum -- "$file") || die "cannot hash $file"
  local_sha=${local_sha%% *}
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    http GET "$base/uploads/$(urlencode "$id")"
    if [ "$code" = 200 ]; then
      state=$(json_string "$body" state) || state=""
      case "$state" in
        complete) break ;;
        failed) forget_upload; die "the server could not assemble $name; run again to retry" ;;
      esac
    elif [ "$code" = 404 ]; then
      forget_upload; die "the server no longer knows upload $id (deleted or expired); run again to start over"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for the server to finish $name (last state: ${state:-HTTP $code})"
    sleep "$pause"
    case "$pause" in 0.2) pause=0.5 ;; 0.5) pause=1 ;; *) pause=2 ;; esac
  done
  server_sha=$(json_string "$body" sha256) || server_sha=""
  forget_upload
  if [ "$server_sha" != "$local_sha" ]; then
    printf 'upload.sh: SHA-256 MISMATCH for %s\n  local:  %s\n  server: %s\n' "$name" "$local_sha" "${server_sha:-none}" >&2
    exit 3
  fi
  log "complete: $name"
  log "sha256 $local_sha (matches the server)"
  log "download: $base/files/$(urlencode "$id")"
  printf '%s\n' "$id"
}

# The state file (if any) once the upload is finished one way or the other: a new run starts a new upload.
state_file=""
forget_upload() { [ -z "$state_file" ] || rm -f -- "$state_file"; }

# ---------- shared by tus, google, nginx and append ----------
# header NAME: the value of response header NAME in $headers (the last one: an interim 100 Continue comes first).
header() {
  local line want=${1,,} value="" found=1
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line,,} == "$want:"* ]]; then
      value=${line#*:}; value=${value#"${value%%[![:space:]]*}"}; found=0
    fi
  done <<< "$headers"
  printf '%s' "$value"
  return $found
}

# origin_of URL: scheme://host[:port], what an upload path from Location is relative to.
origin_of() {
  local u=$1 scheme=""
  if [[ $u == *://* ]]; then scheme=${u%%://*}://; u=${u#*://}; fi
  printf '%s%s' "$scheme" "${u%%/*}"
}

failure_text() {
  if [ "$code" = 000 ]; then printf 'network error: %s' "${curl_error:-no answer}"
  else printf 'HTTP %s%s' "$code" "$(d=$(problem_detail "$body" ""); [ -z "$d" ] || printf ': %s' "$d")"; fi
}

# state_file_of PROTOCOL: the state file holding the upload's id or URL is named after the protocol and the file's
# identity (absolute path, size, modification time): a killed run is continued by the same command, a changed file
# starts a new upload. The server is not part of the name: a server that moved (another port, localhost vs
# 127.0.0.1) still has the upload, and one that does not answers 404 (or 0 stored bytes), which starts a new upload.
state_file_of() {
  local abs mtime key
  abs=$(readlink -f -- "$file") || die "cannot resolve the path of $file"
  mtime=$(stat -c %Y -- "$file") || die "cannot read the modification time of $file"
  key=$(printf '%s\n%s\n%s\n%s\n' "$1" "$abs" "$size" "$mtime" | sha256sum) || die "cannot hash the path of $file"
  printf '%s/%s-%s' "$state_dir" "$1" "${key:0:32}"
}

# write_state "KEY VALUE"...: replaces $state_file (atomically) with these lines.
write_state() {
  mkdir -p -- "$state_dir" || die "cannot create the state directory $state_dir (see --state-dir)"
  { printf '# %s upload of %s (upload.sh; removed once verified)\n' "$protocol" "$(readlink -f -- "$file")"; printf '%s\n' "$@"; } \
    > "$state_file.$$" && mv -f -- "$state_file.$$" "$state_file" || die "cannot write $state_file (see --state-dir)"
}

# read_state KEY: prints KEY's value from $state_file; fails when there is none.
read_state() {
  local key value
  [ -f "$state_file" ] || return 1
  while read -r key value; do
    [ "$key" = "$1" ] && [ -n "$value" ] && { printf '%s' "$value"; return 0; }
  done < "$state_file"
  return 1
}

# url_of LOCATION: a Location (absolute, or a path) as an absolute URL.
url_of() {
  case "$1" in
    http://*|https://*) printf '%s' "$1" ;;
    /*) printf '%s%s' "$(origin_of "$base")" "$1" ;;
    *) printf '%s/%s' "$base" "$1" ;;
  esac
}

# kept_url URL: an upload URL on $base's origin is kept as a path (resolved against BASE_URL on the next run).
kept_url() {
  local keep=$1 origin
  origin=$(origin_of "$base")
  [[ $keep == "$origin"/* ]] && keep=${keep#"$origin"}
  printf '%s' "$keep"
}

# The file's modification time in milliseconds, as a browser's File.lastModified has it.
mtime_ms() { date -r "$file" +%s%3N || die "cannot read the modification time of $file"; }

# retry_transient WHAT: after a transient failure (network, 423, 429, 5xx) waits, doubling, honouring Retry-After, and
# returns 0; returns 1 for other answers or once $retries attempts in a row made no progress.
retry_transient() {
  local wait retry_after=""
  case "$code" in 000|423|429|500|502|503|504|507) ;; *) return 1 ;; esac
  [ "$attempt" -lt "$retries" ] || return 1
  [[ $headers =~ [Rr]etry-[Aa]fter:[[:space:]]*([0-9]+) ]] && retry_after=${BASH_REMATCH[1]}
  wait=$delay
  [ -n "$retry_after" ] && [ "$retry_after" -gt "$wait" ] && wait=$retry_after
  [ "$wait" -le 300 ] || wait=300
  printf '%s: %s, retrying in %s s\n' "$1" "$(failure_text)" "$wait" >&2
  sleep "$wait"
  attempt=$(( attempt + 1 )); delay=$(( delay * 2 )); [ "$delay" -le 30 ] || delay=30
}

# send_range METHOD URL OFFSET LEN [curl args...]: one request whose body is LEN bytes of the file from OFFSET, streamed
# through a pipe (never held in memory; Content-Length, not chunked; capped by --limit-rate). Sets $code, $body,
# $headers, $curl_error and $uploaded (the bytes curl sent, also when the request broke off). Safe in parallel jobs.
send_range() {
  local method=$1 url=$2 from=$3 len=$4 w out="$tmp/body.$BASHPID" hdr="$tmp/hdr.$BASHPID" err="$tmp/err.$BASHPID"
  shift 4
  w=$("${CURL[@]}" -X "$method" -T - -o "$out" -D "$hdr" -w '%{http_code} %{size_upload}' \
    -H 'Transfer-Encoding:' -H "Content-Length: $len" "$@" ${limit_rate:+--limit-rate "$limit_rate"} "$url" 2>"$err" \
    < <(dd if="$file" iflag=skip_bytes,count_bytes skip="$from" count="$len" bs=1M status=none))
  code=${w%% *} uploaded=${w##* }
  [[ $code =~ ^[2-5][0-9]{2}$ ]] || code=000 # no final answer (a 100 Continue, then the connection broke)
  is_uint "$uploaded" || uploaded=0
  body=$(cat "$out" 2>/dev/null)
  headers=$(cat "$hdr" 2>/dev/null)
  curl_error=$(cat "$err" 2>/dev/null)
  rm -f "$out" "$hdr" "$err"
}

# ---------- tus 1.0.0 (PROTOCOLS.md section 10): POST creates, HEAD says where to go on, PATCH appends ----------
TUS=(-H 'Tus-Resumable: 1.0.0')

# tus_head: HEAD the upload URL; on 200 sets $server_offset (the durable offset) and $server_length.
tus_head() {
  server_offset="" server_length=""
  http HEAD "$url" -I "${TUS[@]}"
  if [ "$code" = 200 ]; then
    server_offset=$(header Upload-Offset) && is_uint "$server_offset" || die "HEAD $url: no valid Upload-Offset in the answer"
    server_length=$(header Upload-Length) || server_length=""
  fi
}

# tus_patch OFFSET LEN: one PATCH with LEN bytes of the file from OFFSET.
tus_patch() {
  send_range PATCH "$url" "$1" "$2" "${TUS[@]}" -H "Upload-Offset: $1" -H 'Content-Type: application/offset+octet-stream'
}

# upload_tus: creates the upload or finds the earlier one, PATCHes the rest in order; sets $id.
upload_tus() {
  local path="" offset new len sent=0 acked=0 patches=0 started elapsed pct
  attempt=1 delay=1 url=""
  state_file=$(state_file_of tus)
  if path=$(read_state url); then
    case "$path" in /*|http://*|https://*) url=$(url_of "$path") ;; esac
  fi

  # An upload URL from an earlier run: ask the server how much of it is stored.
  while [ -n "$url" ]; do
    tus_head
    case "$code" in
      200)
        if [ "$server_length" != "$size" ]; then
          log "note: the upload at $url is ${server_length:-of unknown length}, not $size bytes; starting a new one"; url=""
        fi
        break ;;
      404|410) log "the server no longer has the upload at $url (expired, deleted, or another server); starting a new one"; url=""; break ;;
    esac
    retry_transient "HEAD $url" || die "HEAD $url: $(failure_text)"
  done

  if [ -z "$url" ]; then
    local metadata
    metadata="filename $(printf '%s' "$name" | base64 -w 0)" || die "cannot encode the file name"
    attempt=1 delay=1
    while :; do
      http POST "$base/tus" "${TUS[@]}" -H "Upload-Length: $size" -H "Upload-Metadata: $metadata"
      [ "$code" = 201 ] && break
      retry_transient "creating the upload" || die "cannot create a tus upload at $base/tus ($(failure_text)). Does the server speak tus at $base/tus?"
    done
    path=$(header Location) || die "the server created the upload but sent no Location"
    url=$(url_of "$path")
    write_state "url $(kept_url "$url")" "size $size"
    server_offset=0
    log "created $url"
  fi

  [ -z "$jobs_opt" ] || log "note: --jobs does not apply to tus; PATCHes go one after the other"
  offset=$server_offset
  if [ "$offset" -gt 0 ]; then
    log "resuming $name at byte $offset ($(human "$offset") of $(human "$size") already on the server) at $url"
  fi
  if [ "$one_request" = 1 ]; then
    log "uploading $name ($(human "$size")) to $url with tus: the rest in one PATCH"
  else
    log "uploading $name ($(human "$size")) to $url with tus: PATCHes of up to $(human "$chunk")"
  fi

  started=$(date +%s) attempt=1 delay=1
  while [ "$offset" -lt "$size" ]; do
    len=$(( size - offset ))
    [ "$one_request" = 1 ] || [ "$len" -le "$chunk" ] || len=$chunk
    tus_patch "$offset" "$len"
    sent=$(( sent + uploaded )) patches=$(( patches + 1 ))
    case "$code" in
      204)
        new=$(header Upload-Offset) && is_uint "$new" && [ "$new" -gt "$offset" ] && [ "$new" -le "$size" ] ||
          die "PATCH at byte $offset: the server's 204 has no valid Upload-Offset (${new:-none})"
        acked=$(( acked + new - offset )) offset=$new attempt=1 delay=1
        if [ "$quiet" = 0 ]; then
          elapsed=$(( $(date +%s) - started )); [ "$elapsed" -ge 1 ] || elapsed=1
          pct=100; [ "$size" -gt 0 ] && pct=$(( offset * 100 / size ))
          log "$(printf '%3s%%  %s of %s  %s/s' "$pct" "$(human "$offset")" "$(human "$size")" "$(human $(( sent / elapsed )))")"
        fi
        continue ;;
      409)
        # Not where the server is (another client, or an earlier PATCH kept more than we knew): go on from there.
        new=$(header Upload-Offset) && is_uint "$new" && [ "$new" -le "$size" ] || die "PATCH at byte $offset: $(failure_text)"
        [ "$attempt" -lt "$retries" ] || die "PATCH at byte $offset: the offset kept moving ($(failure_text))"
        log "the server has $new bytes, not $offset; going on from there"
        offset=$new attempt=$(( attempt + 1 ))
        continue ;;
      404|410)
        forget_upload
        die "the server no longer has the upload at $url (expired or deleted); run again to start over" ;;
    esac
    retry_transient "PATCH at byte $offset" || die "PATCH at byte $offset: $(failure_text); run the same command again to continue"

    # A PATCH that broke off keeps what the server stored: HEAD says where to go on.
    while :; do
      tus_head
      case "$code" in
        200) break ;;
        404|410) forget_upload; die "the server no longer has the upload at $url (expired or deleted); run again to start over" ;;
      esac
      retry_transient "HEAD $url" || die "HEAD $url: $(failure_text); run the same command again to continue"
    done
    if [ "$server_offset" -gt "$offset" ]; then attempt=1 delay=1; fi
    log "the server has $server_offset bytes; going on from there"
    offset=$server_offset
  done

  # "already on the server": what this run did not have to send (more than the first HEAD said when an interrupted
  # PATCH was still being stored then, and the server answered 409 with its new offset).
  log "bytes sent: $sent in $patches PATCH(es), already on the server: $(( size - acked ))"
  id=${url##*/}
  [[ $id != *%* ]] || id=$(printf '%b' "${id//%/\\x}")
}

# ---------- Google-style resumable (PROTOCOLS.md section 6): POST initiates, PUTs carry Content-Range, 308 says how far ----------
# google_stored: the bytes a 308 reports stored into $server_offset (Range: bytes=0-N is N+1 bytes; no Range: none).
google_stored() {
  local range
  if range=$(header Range); then
    [[ $range =~ ^bytes=0-([0-9]{1,18})$ ]] && [ "$(( 10#${BASH_REMATCH[1]} ))" -lt "$size" ] ||
      die "the server's 308 has a Range that does not fit a $size-byte file: $range"
    server_offset=$(( 10#${BASH_REMATCH[1]} + 1 ))
  else
    server_offset=0
  fi
}

# google_query: the status query (an empty PUT with Content-Range: bytes */SIZE); on 308, 200 or 201 sets $server_offset.
google_query() {
  server_offset=""
  http PUT "$url" -H "Content-Range: bytes */$size" -H 'Content-Length: 0'
  case "$code" in
    308) google_stored ;;
    200|201) server_offset=$size ;;
  esac
}

# google_status WHAT: the status query until it answers; a session the server no longer has ends the run.
google_status() {
  while :; do
    google_query
    case "$code" in
      308|200|201) return 0 ;;
      404|410) forget_upload; die "the server no longer has the upload at $url (expired or deleted); run again to start over" ;;
    esac
    retry_transient "$1" || die "$1: $(failure_text); run the same command again to continue"
  done
}

# upload_google: initiates the upload or asks where the earlier one stands, PUTs the rest in order; sets $id.
upload_google() {
  local path="" offset len sent=0 acked=0 puts=0 started elapsed pct metadata
  attempt=1 delay=1 url=""
  state_file=$(state_file_of google)
  # The name in /upload/NAME: the file's, after its size and modification time (another file of that name is another
  # upload, and the append id of the same file is name-size-time).
  id=$(read_state id) || id="$size-$(mtime_ms)-${name//[[:cntrl:]]/_}"
  if path=$(read_state url); then
    case "$path" in /*|http://*|https://*) url=$(url_of "$path") ;; esac
  fi

  # A session from an earlier run: ask how much of it is stored.
  while [ -n "$url" ]; do
    google_query
    case "$code" in
      308|200|201) break ;;
      404|410) log "the server no longer has the upload at $url (expired, deleted, or another server); starting a new one"; url=""; break ;;
    esac
    retry_transient "asking $url for its status" || die "asking $url for its status: $(failure_text)"
  done

  if [ -z "$url" ]; then
    metadata="{\"name\":\"$(json_escape "$name")\",\"contentType\":\"application/octet-stream\"}"
    attempt=1 delay=1
    while :; do
      http POST "$base/upload/$(urlencode "$id")?uploadType=resumable" -H 'Content-Type: application/json; charset=UTF-8' \
        -H 'X-Upload-Content-Type: application/octet-stream' -H "X-Upload-Content-Length: $size" --data-binary "$metadata"
      [ "$code" = 200 ] || [ "$code" = 201 ] && break
      if [ "$code" = 409 ] && [ "$(json_string "$body" reason)" = upload_complete ]; then
        log "the server has $id complete already"
        log "bytes sent: 0 in 0 PUT(s), already on the server: $size"
        return 0
      fi
      retry_transient "starting the upload" ||
        die "cannot start a Google-style upload at $base/upload/$(urlencode "$id") ($(failure_text)). Does the server speak it at $base/upload/NAME?"
    done
    path=$(header Location) || die "the server started the upload but sent no Location"
    url=$(url_of "$path")
    write_state "id $id" "url $(kept_url "$url")" "size $size"
    server_offset=0
    log "started $url"
  fi

  [ -z "$jobs_opt" ] || log "note: --jobs does not apply to google; PUTs go one after the other"
  offset=$server_offset
  [ "$offset" -eq 0 ] || [ "$offset" -ge "$size" ] ||
    log "resuming $name at byte $offset ($(human "$offset") of $(human "$size") already on the server) at $url"
  if [ "$one_request" = 1 ]; then
    log "uploading $name ($(human "$size")) to $url Google-style: the rest in one PUT"
  else
    log "uploading $name ($(human "$size")) to $url Google-style: PUTs of up to $(human "$chunk")"
  fi

  started=$(date +%s) attempt=1 delay=1
  while [ "$offset" -lt "$size" ]; do
    len=$(( size - offset ))
    [ "$one_request" = 1 ] || [ "$len" -le "$chunk" ] || len=$chunk
    send_range PUT "$url" "$offset" "$len" -H "Content-Range: bytes $offset-$(( offset + len - 1 ))/$size" \
      -H 'Content-Type: application/octet-stream'
    sent=$(( sent + uploaded )) puts=$(( puts + 1 ))
    case "$code" in
      200|201) acked=$(( acked + size - offset )) offset=$size; break ;;
      308)
        # The server may have stored less than was sent: go on from its Range, not from what was sent.
        google_stored
        if [ "$server_offset" -gt "$offset" ]; then
          acked=$(( acked + server_offset - offset )) attempt=1 delay=1
        else
          [ "$attempt" -lt "$retries" ] || die "PUT at byte $offset: the server stored nothing of it $attempt times in a row"
          attempt=$(( attempt + 1 ))
        fi
        offset=$server_offset
        if [ "$quiet" = 0 ]; then
          elapsed=$(( $(date +%s) - started )); [ "$elapsed" -ge 1 ] || elapsed=1
          pct=$(( offset * 100 / size ))
          log "$(printf '%3s%%  %s of %s  %s/s' "$pct" "$(human "$offset")" "$(human "$size")" "$(human $(( sent / elapsed )))")"
        fi
        continue ;;
      404|410)
        forget_upload
        die "the server no longer has the upload at $url (expired or deleted); run again to start over" ;;
    esac
    retry_transient "PUT at byte $offset" || die "PUT at byte $offset: $(failure_text); run the same command again to continue"

    # A PUT that broke off keeps what the server stored: the status query says where to go on.
    google_status "asking $url for its status"
    [ "$server_offset" -le "$offset" ] || attempt=1 delay=1
    log "the server has $server_offset bytes; going on from there"
    offset=$server_offset
  done

  log "bytes sent: $sent in $puts PUT(s), already on the server: $(( size - acked ))"
}

# ---------- nginx upload module, resumable mode (PROTOCOLS.md section 5): segments in any order, 201 lists the ranges ----------
# Range lists are kept as "first-last,first-last" (inclusive, merged, ascending), as the module writes them.

# list_of_status JSON: the stored ranges of GET /uploads/{id} as a range list.
list_of_status() {
  local rest=$1 list="" re='\{"offset":([0-9]+),"length":([0-9]+)\}'
  [[ $rest == *'"storedRanges":['* ]] || return 1
  rest=${rest#*'"storedRanges":['}
  rest=${rest%%]*}
  while [[ $rest =~ $re ]]; do
    list+=${list:+,}${BASH_REMATCH[1]}-$(( BASH_REMATCH[1] + BASH_REMATCH[2] - 1 ))
    rest=${rest#*"${BASH_REMATCH[0]}"}
  done
  printf '%s' "$list"
}

# list_of_answer TEXT: the range list of a 201 or 200 body ("0-5,9-15/24"), checked against the file's size.
list_of_answer() {
  [[ $1 =~ ^([0-9]{1,18}-[0-9]{1,18}(,[0-9]{1,18}-[0-9]{1,18})*)/([0-9]+)$ ]] && [ "${BASH_REMATCH[3]}" = "$size" ] || return 1
  printf '%s' "${BASH_REMATCH[1]}"
}

# covered LIST: the number of bytes a range list names.
covered() {
  local r n=0
  local IFS=,
  for r in $1; do n=$(( n + 10#${r#*-} - 10#${r%-*} + 1 )); done
  printf '%s' "$n"
}

# missing_of LIST: the ranges of the file LIST lacks, one "first-last" a line.
missing_of() {
  local r at=0 first last
  local IFS=,
  for r in $1; do
    first=$(( 10#${r%-*} )) last=$(( 10#${r#*-} ))
    [ "$first" -le "$at" ] || printf '%s-%s\n' "$at" "$(( first - 1 ))"
    [ "$(( last + 1 ))" -le "$at" ] || at=$(( last + 1 ))
  done
  [ "$at" -ge "$size" ] || printf '%s-%s\n' "$at" "$(( size - 1 ))"
}

# send_segment K FIRST LEN: POSTs one segment, retrying transient failures; writes "sent|complete|fail ..." to
# $tmp/done.K (with the bytes curl sent) and the answer's range list to $tmp/list.K.
send_segment() {
  local k=$1 from=$2 len=$3 total=0
  attempt=1 delay=1
  while :; do
    send_range POST "$base/nginx-upload" "$from" "$len" -H "Session-ID: $id" \
      -H "X-Content-Range: bytes $from-$(( from + len - 1 ))/$size" -H 'Content-Type: application/octet-stream' \
      -H "Content-Disposition: attachment; filename=\"$(urlencode "$name")\""
    total=$(( total + uploaded ))
    case "$code" in
      200|201)
        printf '%s' "$body" > "$tmp/list.$k"
        echo "$([ "$code" = 200 ] && echo complete || echo sent) $len $total" > "$tmp/done.$k"; return 0 ;;
    esac
    if ! retry_transient "segment at byte $from"; then
      echo "fail $len $total segment at byte $from: $(failure_text)" > "$tmp/done.$k"; return 1
    fi
  done
}

# upload_nginx: asks what the server has, then sends the missing ranges in segments, N at a time, until a 200 (or a
# 201 listing the whole file); sets $id.
upload_nginx() {
  local list="" answer missing r first last seg k=0 round=0 running now last_report=0 done_bytes kind len bytes rest
  local sent=0 segments=0 already complete=0 failed started elapsed pct best
  [ "$size" -gt 0 ] || die "the nginx upload module's protocol cannot send an empty file (a range names at least one byte)"
  state_file=$(state_file_of nginx)
  # resumable.js's identifier (size-name, only [0-9a-zA-Z_-]) and the modification time: what Session-ID allows.
  id=$(read_state id) || id="$(id_of "$size" "$name")-$(mtime_ms)"
  attempt=1 delay=1
  while :; do
    http GET "$base/uploads/$(urlencode "$id")"
    case "$code" in
      200)
        [ "$(json_number "$body" totalSize)" = "$size" ] ||
          die "the server's upload $id is not $size bytes; remove it (DELETE $base/uploads/$(urlencode "$id")) or touch the file"
        list=$(list_of_status "$body") || die "unexpected answer from GET $base/uploads/$(urlencode "$id"): ${body:0:200}"
        break ;;
      404) list=""; break ;;
    esac
    retry_transient "GET $base/uploads/$(urlencode "$id")" || die "cannot ask the server what it has of $id: $(failure_text)"
  done
  write_state "id $id" "size $size"
  already=$(covered "$list")
  if [ "$already" -gt 0 ]; then
    log "resuming $name: $(human "$already") of $(human "$size") already on the server as Session-ID $id"
  fi
  log "uploading $name ($(human "$size")) to $base/nginx-upload as Session-ID $id: segments of up to $(human "$chunk"), $jobs at a time"

  started=$(date +%s)
  while [ "$complete" = 0 ]; do
    # The segments of every range the last list lacks (all of them stored whole or not at all).
    local -a segs=()
    while IFS=- read -r first last; do
      [ -n "$first" ] || continue
      for (( seg = first; seg <= last; seg += chunk )); do
        len=$(( last + 1 - seg )); [ "$len" -le "$chunk" ] || len=$chunk
        segs+=("$seg $len")
      done
    done < <(missing_of "$list")
    [ ${#segs[@]} -gt 0 ] || break # every byte is stored: the server finishes the file
    round=$(( round + 1 ))
    [ "$round" -le "$retries" ] || die "the server still lacks $(( size - $(covered "$list") )) bytes after $retries rounds; run the same command again to continue"
    rm -f "$tmp"/done.* "$tmp"/list.*
    running=0 k=0
    for seg in "${segs[@]}"; do
      while [ "$running" -ge "$jobs" ]; do wait -n 2>/dev/null; running=$(( running - 1 )); nginx_progress; done
      k=$(( k + 1 ))
      send_segment "$k" ${seg% *} ${seg#* } & pids+=($!)
      running=$(( running + 1 ))
    done
    while [ "$running" -gt 0 ]; do wait -n 2>/dev/null; running=$(( running - 1 )); nginx_progress; done
    pids=()

    # Every answer lists every stored range; the one naming the most bytes is the newest.
    failed=0 best=$list
    for (( k = 1; k <= ${#segs[@]}; k++ )); do
      if [ ! -e "$tmp/done.$k" ]; then failed=1; printf 'upload.sh: segment %s: no result\n' "$k" >&2; continue; fi
      read -r kind len bytes rest < "$tmp/done.$k"
      sent=$(( sent + bytes )) segments=$(( segments + 1 ))
      case "$kind" in
        complete) complete=1 ;;
        sent) ;;
        *) failed=1; printf 'upload.sh: %s\n' "$rest" >&2; continue ;;
      esac
      answer=$(cat "$tmp/list.$k") && answer=$(list_of_answer "$answer") ||
        die "the server's answer to a segment is not a range list of a $size-byte file: $(head -c 200 "$tmp/list.$k")"
      [ "$(covered "$answer")" -le "$(covered "$best")" ] || best=$answer
    done
    list=$best
    [ "$failed" = 0 ] || die "upload incomplete; run the same command again to continue"
  done
  log "bytes sent: $sent in $segments segment(s), already on the server: $already"
}

# nginx_progress: one progress line a second from the finished segments of this round.
nginx_progress() {
  [ "$quiet" = 1 ] && return
  local f kind len bytes round_sent=0 stored
  now=$(date +%s)
  [ "$now" -ne "$last_report" ] || return 0
  last_report=$now
  for f in "$tmp"/done.*; do
    [ -e "$f" ] || continue
    read -r kind len bytes _ < "$f"
    case "$kind" in sent|complete) round_sent=$(( round_sent + len )) ;; esac
  done
  stored=$(( $(covered "$list") + round_sent ))
  elapsed=$(( now - started )); [ "$elapsed" -ge 1 ] || elapsed=1
  pct=$(( stored * 100 / size ))
  log "$(printf '%3s%%  %s of %s  %s/s' "$pct" "$(human "$stored")" "$(human "$size")" "$(human $(( (sent + round_sent) / elapsed )))")"
}

# ---------- javascript.info append (PROTOCOLS.md section 7): GET status says how many bytes, POST appends the rest ----------
# append_status: GET /append/status until it answers; sets $server_offset.
append_status() {
  while :; do
    http GET "$base/append/status" -H "X-File-Id: $id"
    if [ "$code" = 200 ]; then
      is_uint "$body" && [ ${#body} -le 18 ] || die "GET $base/append/status: not a byte count: ${body:0:100}"
      server_offset=$body
      return 0
    fi
    retry_transient "GET $base/append/status" || die "GET $base/append/status: $(failure_text)"
  done
}

# upload_append: asks how much is stored, then POSTs the rest from there (again after a drop); sets $id.
upload_append() {
  local offset new sent=0 acked=0 posts=0 done=0
  attempt=1 delay=1
  state_file=$(state_file_of append)
  # javascript.info's id: name-size-lastModified.
  id=$(read_state id) || id="${name//[[:cntrl:]]/_}-$size-$(mtime_ms)"
  append_status
  write_state "id $id" "size $size"
  offset=$server_offset
  if [ "$offset" -gt "$size" ]; then
    log "note: the server has $offset bytes of $id, more than the file's $size; starting over"
    offset=0
  elif [ "$offset" -gt 0 ]; then
    log "resuming $name at byte $offset ($(human "$offset") of $(human "$size") already on the server) as $id"
  fi
  [ -z "$jobs_opt" ] || log "note: --jobs does not apply to append; the rest goes in one POST"
  log "uploading $name ($(human "$size")) to $base/append as $id: the rest in one POST"

  # The rest of the file in one POST (even an empty rest: the answer says the file is complete). X-File-Size states
  # the total, so the upload completes once that many bytes are stored, however many POSTs it took.
  attempt=1 delay=1
  while [ "$done" = 0 ]; do
    send_range POST "$base/append" "$offset" "$(( size - offset ))" -H "X-File-Id: $id" -H "X-Start-Byte: $offset" \
      -H "X-File-Size: $size"
    sent=$(( sent + uploaded )) posts=$(( posts + 1 ))
    case "$code" in
      200)
        is_uint "$body" && [ ${#body} -le 18 ] && [ "$body" -ge "$offset" ] && [ "$body" -le "$size" ] ||
          die "POST at byte $offset: the server's 200 is not a byte count from $offset to $size: ${body:0:100}"
        acked=$(( acked + body - offset )) offset=$body
        [ "$offset" -lt "$size" ] || done=1
        continue ;;
      409)
        # Not where the server is (another client, or a POST cut off earlier was still being stored): go on from there.
        new=$(header Upload-Offset) && is_uint "$new" && [ "$new" -le "$size" ] || die "POST at byte $offset: $(failure_text)"
        [ "$attempt" -lt "$retries" ] || die "POST at byte $offset: the offset kept moving ($(failure_text))"
        log "the server has $new bytes, not $offset; going on from there"
        offset=$new attempt=$(( attempt + 1 ))
        continue ;;
    esac
    retry_transient "POST at byte $offset" || die "POST at byte $offset: $(failure_text); run the same command again to continue"

    # A POST that broke off keeps what the server stored: the status says where to go on.
    append_status
    [ "$server_offset" -le "$offset" ] || attempt=1 delay=1
    log "the server has $server_offset bytes; going on from there"
    offset=$server_offset
    [ "$offset" -le "$size" ] || die "the server now has $offset bytes of $id, more than the file's $size"
  done
  log "bytes sent: $sent in $posts POST(s), already on the server: $(( size - acked ))"
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
if [ "$protocol" != resumable ]; then
  "upload_$protocol"
  verify_on_server
  exit 0
fi

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

verify_on_server

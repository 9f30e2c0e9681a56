#!/usr/bin/env bash
# Resumable upload of one file to a ChunkUpload server with curl, the way resumable.js does it, or over tus 1.0.0.
# Requires bash 4.3+, curl and coreutils only.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: upload.sh [options] FILE [BASE_URL]

Uploads FILE to a ChunkUpload server in chunks, exactly as resumable.js splits it, and can be
interrupted (Ctrl-C, kill, lost network) and run again: chunks already on the server are skipped.
At the end it waits for the server to assemble the file and compares the server's SHA-256 with
the local one.

With --protocol tus it speaks tus 1.0.0 instead (BASE_URL/tus): it creates an upload (POST), then
sends the file in order with PATCH requests from the offset the server reports (HEAD), one chunk
per PATCH or the whole rest in one. The upload URL is kept in a small state file named after the
file's path, size and modification time, so a run that was killed, or a PATCH that failed, goes on
from the bytes the server has stored (a PATCH cut off half-way keeps its stored part). The state
file is removed once the upload is verified; a changed file starts a new upload.

BASE_URL defaults to $CHUNKUPLOAD_URL, else http://localhost:5080.

Options:
  -p, --protocol P      resumable (default: resumable.js chunks, several at a time) or tus
  -j, --jobs N          chunks sent in parallel (default: the server's simultaneousUploads, else 4;
                        resumable only: tus PATCHes go one after the other)
  -c, --chunk-size N    chunk size in bytes (default: the server's recommended chunkSize from GET /config;
                        a resumable upload that already exists on the server keeps its own chunk size;
                        with tus, the most bytes one PATCH carries)
      --one-patch       tus: send the rest of the file in one PATCH (as tus-js-client does by default)
      --state-dir DIR   tus: where upload URLs are kept between runs (default $CHUNKUPLOAD_STATE_DIR,
                        else ${XDG_STATE_HOME:-~/.local/state}/chunkupload)
  -r, --retries N       attempts per chunk (tus: per PATCH that makes no progress) for transient errors
                        (network, 503, 507; default 10)
  -t, --timeout S       seconds to wait for the server to finish the file (default 600)
  -l, --limit-rate R    cap each chunk request's (PATCH's) speed (curl syntax: 500K, 2M), to leave room on a
                        shared line
  -q, --quiet           no progress output
  -h, --help            this help

Exit status: 0 when the file is on the server and its SHA-256 matches, 1 on any failure,
2 on wrong usage, 3 when the server's SHA-256 differs from the local file's.

Examples:
  scripts/upload.sh film.mkv
  scripts/upload.sh -j 8 film.mkv https://upload.example.org
  CHUNKUPLOAD_URL=http://127.0.0.1:5080 scripts/upload.sh -c 4194304 backup.tar
  scripts/upload.sh --protocol tus --limit-rate 2M film.mkv    # killed? the same command continues
EOF
}

die() { printf 'upload.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'upload.sh: %s\nTry "upload.sh --help".\n' "$*" >&2; exit 2; }

jobs_opt="" chunk_opt="" retries=10 timeout=600 quiet=0 limit_rate="" protocol=resumable one_patch=0
state_dir=${CHUNKUPLOAD_STATE_DIR:-${XDG_STATE_HOME:-${HOME:-.}/.local/state}/chunkupload}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -p|--protocol) [ $# -ge 2 ] || usage_error "$1 needs a value"; protocol=$2; shift 2 ;;
    --protocol=*) protocol=${1#*=}; shift ;;
    --one-patch) one_patch=1; shift ;;
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
case "$protocol" in resumable|tus) ;; *) usage_error "--protocol must be resumable or tus" ;; esac
[ "$one_patch" = 0 ] || [ "$protocol" = tus ] || usage_error "--one-patch needs --protocol tus"
[ -n "$state_dir" ] || usage_error "--state-dir must name a directory"
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

# The tus state file (if any) once the upload is finished one way or the other: a new run starts a new upload.
state_file=""
forget_upload() { [ -z "$state_file" ] || rm -f -- "$state_file"; }

# ---------- tus 1.0.0 (PROTOCOLS.md section 10): POST creates, HEAD says where to go on, PATCH appends ----------
TUS=(-H 'Tus-Resumable: 1.0.0')

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

# The state file holding the file's upload URL is named after the file's identity (absolute path, size,
# modification time): a killed run is continued by the same command, a changed file starts a new upload. The
# server is not part of the name: a server that moved (another port, localhost vs 127.0.0.1) still has the upload,
# and one that does not answers 404, which starts a new upload.
tus_state_file() {
  local abs mtime key
  abs=$(readlink -f -- "$file") || die "cannot resolve the path of $file"
  mtime=$(stat -c %Y -- "$file") || die "cannot read the modification time of $file"
  key=$(printf 'tus\n%s\n%s\n%s\n' "$abs" "$size" "$mtime" | sha256sum) || die "cannot hash the path of $file"
  printf '%s/tus-%s' "$state_dir" "${key:0:32}"
}

# save_upload_url URL: an upload URL on $base's origin is kept as a path (resolved against BASE_URL on the next run).
save_upload_url() {
  local keep=$1 origin
  origin=$(origin_of "$base")
  [[ $keep == "$origin"/* ]] && keep=${keep#"$origin"}
  mkdir -p -- "$state_dir" || die "cannot create the state directory $state_dir (see --state-dir)"
  printf '# tus upload of %s (upload.sh; removed once verified)\nurl %s\nsize %s\n' "$(readlink -f -- "$file")" "$keep" "$size" \
    > "$state_file.$$" && mv -f -- "$state_file.$$" "$state_file" || die "cannot write $state_file (see --state-dir)"
}

# tus_retry WHAT: after a transient failure (network, 423, 429, 5xx) waits, doubling, honouring Retry-After, and
# returns 0; returns 1 for other answers or once $retries attempts in a row made no progress.
tus_retry() {
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

# tus_head: HEAD the upload URL; on 200 sets $server_offset (the durable offset) and $server_length.
tus_head() {
  server_offset="" server_length=""
  http HEAD "$url" -I "${TUS[@]}"
  if [ "$code" = 200 ]; then
    server_offset=$(header Upload-Offset) && is_uint "$server_offset" || die "HEAD $url: no valid Upload-Offset in the answer"
    server_length=$(header Upload-Length) || server_length=""
  fi
}

# tus_patch OFFSET LEN: one PATCH with LEN bytes of the file from OFFSET, streamed through a pipe (never held in
# memory; Content-Length, not chunked). Sets $code, $body, $headers, $curl_error and $uploaded (the bytes curl
# sent, also when the request broke off).
tus_patch() {
  local w
  w=$("${CURL[@]}" -X PATCH -T - -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code} %{size_upload}' "${TUS[@]}" \
    -H 'Transfer-Encoding:' -H "Content-Length: $2" -H "Upload-Offset: $1" -H 'Content-Type: application/offset+octet-stream' \
    ${limit_rate:+--limit-rate "$limit_rate"} "$url" 2>"$tmp/err" \
    < <(dd if="$file" iflag=skip_bytes,count_bytes skip="$1" count="$2" bs=1M status=none))
  code=${w%% *} uploaded=${w##* }
  [[ $code =~ ^[2-5][0-9]{2}$ ]] || code=000 # no final answer (a 100 Continue, then the connection broke)
  is_uint "$uploaded" || uploaded=0
  body=$(cat "$tmp/body" 2>/dev/null)
  headers=$(cat "$tmp/hdr" 2>/dev/null)
  curl_error=$(cat "$tmp/err" 2>/dev/null)
  rm -f "$tmp/body" "$tmp/hdr" "$tmp/err"
}

# upload_tus: creates the upload or finds the earlier one, PATCHes the rest in order; sets $id.
upload_tus() {
  local path="" key value offset new len sent=0 acked=0 patches=0 started elapsed pct
  attempt=1 delay=1 url=""
  state_file=$(tus_state_file)
  if [ -f "$state_file" ]; then
    while read -r key value; do [ "$key" = url ] && path=$value; done < "$state_file"
    case "$path" in /*) url=$(origin_of "$base")$path ;; http://*|https://*) url=$path ;; esac
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
    tus_retry "HEAD $url" || die "HEAD $url: $(failure_text)"
  done

  if [ -z "$url" ]; then
    local metadata
    metadata="filename $(printf '%s' "$name" | base64 -w 0)" || die "cannot encode the file name"
    attempt=1 delay=1
    while :; do
      http POST "$base/tus" "${TUS[@]}" -H "Upload-Length: $size" -H "Upload-Metadata: $metadata"
      [ "$code" = 201 ] && break
      tus_retry "creating the upload" || die "cannot create a tus upload at $base/tus ($(failure_text)). Does the server speak tus at $base/tus?"
    done
    path=$(header Location) || die "the server created the upload but sent no Location"
    case "$path" in
      http://*|https://*) url=$path ;;
      /*) url=$(origin_of "$base")$path ;;
      *) url=$base/$path ;;
    esac
    save_upload_url "$url"
    server_offset=0
    log "created $url"
  fi

  [ -z "$jobs_opt" ] || log "note: --jobs does not apply to tus; PATCHes go one after the other"
  offset=$server_offset
  if [ "$offset" -gt 0 ]; then
    log "resuming $name at byte $offset ($(human "$offset") of $(human "$size") already on the server) at $url"
  fi
  if [ "$one_patch" = 1 ]; then
    log "uploading $name ($(human "$size")) to $url with tus: the rest in one PATCH"
  else
    log "uploading $name ($(human "$size")) to $url with tus: PATCHes of up to $(human "$chunk")"
  fi

  started=$(date +%s) attempt=1 delay=1
  while [ "$offset" -lt "$size" ]; do
    len=$(( size - offset ))
    [ "$one_patch" = 1 ] || [ "$len" -le "$chunk" ] || len=$chunk
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
    tus_retry "PATCH at byte $offset" || die "PATCH at byte $offset: $(failure_text); run the same command again to continue"

    # A PATCH that broke off keeps what the server stored: HEAD says where to go on.
    while :; do
      tus_head
      case "$code" in
        200) break ;;
        404|410) forget_upload; die "the server no longer has the upload at $url (expired or deleted); run again to start over" ;;
      esac
      tus_retry "HEAD $url" || die "HEAD $url: $(failure_text); run the same command again to continue"
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
if [ "$protocol" = tus ]; then
  upload_tus
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

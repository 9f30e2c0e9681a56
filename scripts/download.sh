#!/usr/bin/env bash
# Downloads a completed upload from a ChunkUpload server, resuming a partial download with Range.
# Requires bash, curl and coreutils only.
set -uo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: download.sh [options] ID [OUT]

Downloads the completed upload ID to OUT (default: the original file name, in the current
directory). Bytes go to OUT.part first; if the download is interrupted, running the same command
again continues from where it stopped (HTTP Range). At the end the SHA-256 is compared with the
server's and OUT.part is renamed to OUT.

Options:
  -u, --url BASE_URL   server (default $CHUNKUPLOAD_URL, else http://localhost:5080)
  -r, --retries N      attempts when the connection drops (default 10)
  -f, --force          overwrite OUT if it exists
  -h, --help           this help

Exit status: 0 on success, 4 when the upload is unknown or not complete yet, 3 when the SHA-256
differs, 1 on other failures, 2 on wrong usage.

Examples:
  scripts/download.sh 2459177-filmmkv
  scripts/download.sh -u https://upload.example.org 2459177-filmmkv /data/film.mkv
EOF_USAGE
}
die() { printf 'download.sh: %s\n' "$*" >&2; exit "${2:-1}"; }
usage_error() { printf 'download.sh: %s\nTry "download.sh --help".\n' "$*" >&2; exit 2; }

base=${CHUNKUPLOAD_URL:-http://localhost:5080} retries=10 force=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -u|--url) [ $# -ge 2 ] || usage_error "$1 needs a value"; base=$2; shift 2 ;;
    --url=*) base=${1#*=}; shift ;;
    -r|--retries) [ $# -ge 2 ] || usage_error "$1 needs a value"; retries=$2; shift 2 ;;
    -f|--force) force=1; shift ;;
    --) shift; args+=("$@"); break ;;
    -?*) usage_error "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 1 ] && [ ${#args[@]} -le 2 ] || usage_error "expected ID [OUT]"
[[ $retries =~ ^[0-9]+$ ]] && [ "$retries" -ge 1 ] || usage_error "--retries must be a positive number"
id=${args[0]}
base=${base%/}

# urlencode, json_number, json_string
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# Undo JSON string escapes that can appear in a file name (\" \\ \/ and \uXXXX).
json_unescape() { local s=$1; s=${s//\\\"/\"}; s=${s//\\\//\/}; printf -v s '%b' "${s//\\u/\\u}"; printf '%s' "$s"; }

tmp=$(mktemp) || die "cannot create a temporary file"
trap 'rm -f "$tmp"' EXIT
id_url=$(urlencode "$id")
code=$(curl --silent --show-error --connect-timeout 10 --globoff -o "$tmp" -w '%{http_code}' "$base/uploads/$id_url") \
  || die "cannot reach $base"
body=$(cat "$tmp")
case "$code" in
  200) ;;
  404) die "the server at $base has no upload $id" 4 ;;
  *) d=$(json_string "$body" detail) || d=$body; die "HTTP $code from $base: $d" ;;
esac
state=$(json_string "$body" state) || state=""
[ "$state" = complete ] || die "upload $id is not complete yet (state: ${state:-unknown}); see scripts/status.sh $id" 4
size=$(json_number "$body" totalSize) || die "unexpected answer: $body"
server_sha=$(json_string "$body" sha256) || server_sha=""

if [ ${#args[@]} -ge 2 ]; then
  out=${args[1]}
else
  out=$(json_unescape "$(json_string "$body" fileName)")
  out=${out##*/}
  [ -n "$out" ] && [ "$out" != . ] && [ "$out" != .. ] || out=$id
fi
[ ! -d "$out" ] || out="$out/$(json_unescape "$(json_string "$body" fileName)")"
if [ -e "$out" ] && [ "$force" = 0 ]; then die "$out exists; use --force to overwrite"; fi
part="$out.part"

attempt=1
while :; do
  have=0; [ -e "$part" ] && have=$(stat -c %s -- "$part")
  if [ "$have" -gt "$size" ]; then die "$part is larger than the file on the server; delete it and run again"; fi
  [ "$have" -lt "$size" ] || break
  [ "$have" -eq 0 ] || printf 'download.sh: resuming at byte %s of %s\n' "$have" "$size" >&2
  # -C - sends Range: bytes=<size of $part>- and appends the 206 answer.
  code=$(curl --silent --show-error --connect-timeout 10 --globoff --fail-with-body -C - -o "$part" \
    -w '%{http_code}' "$base/files/$id_url" 2>"$tmp") && break
  err=$(cat "$tmp")
  now=0; [ -e "$part" ] && now=$(stat -c %s -- "$part")
  [ "$now" -lt "$size" ] || break
  case "$code" in 404|410) die "the file is gone from the server (HTTP $code)" 4 ;; esac
  [ "$attempt" -lt "$retries" ] || die "download failed after $attempt attempts: ${err:-HTTP $code}; run again to continue"
  printf 'download.sh: %s; retrying (%s/%s)\n' "${err:-HTTP $code}" "$attempt" "$retries" >&2
  sleep $(( attempt < 10 ? attempt : 10 ))
  attempt=$(( attempt + 1 ))
done

got=$(stat -c %s -- "$part" 2>/dev/null || printf 0)
[ "$got" -eq "$size" ] || die "downloaded $got bytes, expected $size; run again to continue"
sha=$(sha256sum -- "$part") || die "cannot hash $part"
sha=${sha%% *}
if [ -n "$server_sha" ] && [ "$sha" != "$server_sha" ]; then
  printf 'download.sh: SHA-256 MISMATCH\n  local:  %s\n  server: %s\n%s is kept for inspection\n' "$sha" "$server_sha" "$part" >&2
  exit 3
fi
mv -f -- "$part" "$out" || die "cannot rename $part to $out"
printf 'download.sh: %s (%s bytes, sha256 %s)\n' "$out" "$size" "$sha" >&2
printf '%s\n' "$out"

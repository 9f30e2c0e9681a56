#!/usr/bin/env bash
# Shows what a ChunkUpload server knows about one upload. Requires bash, curl and coreutils only.
set -uo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: status.sh [options] ID [BASE_URL]

Prints the state of upload ID (as printed by upload.sh, e.g. 2459177-filmmkv): file name, size,
chunks received and missing, state (receiving, assembling, complete, failed) and SHA-256.

BASE_URL defaults to $CHUNKUPLOAD_URL, else http://localhost:5080.

Options:
  --json       print the server's JSON answer unchanged
  -h, --help   this help

Exit status: 0 when the server knows the upload, 4 when it does not (404), 1 on other failures,
2 on wrong usage.

Examples:
  scripts/status.sh 2459177-filmmkv
  scripts/status.sh --json 2459177-filmmkv https://upload.example.org
EOF_USAGE
}
die() { printf 'status.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'status.sh: %s\nTry "status.sh --help".\n' "$*" >&2; exit 2; }

json=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --json) json=1; shift ;;
    --) shift; args+=("$@"); break ;;
    -?*) usage_error "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 1 ] && [ ${#args[@]} -le 2 ] || usage_error "expected ID [BASE_URL]"
id=${args[0]}
base=${args[1]:-${CHUNKUPLOAD_URL:-http://localhost:5080}}
base=${base%/}

# urlencode, json_number, json_string
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

tmp=$(mktemp) || die "cannot create a temporary file"
trap 'rm -f "$tmp"' EXIT
code=$(curl --silent --show-error --connect-timeout 10 --globoff -o "$tmp" -w '%{http_code}' \
  "$base/uploads/$(urlencode "$id")") || die "cannot reach $base"
body=$(cat "$tmp")
case "$code" in
  200) ;;
  404) printf 'status.sh: the server at %s has no upload %s (never started, cancelled or expired)\n' "$base" "$id" >&2; exit 4 ;;
  *) detail=$(json_string "$body" detail) || detail=$body; die "HTTP $code from $base: $detail" ;;
esac
if [ "$json" = 1 ]; then printf '%s\n' "$body"; exit 0; fi

total=$(json_number "$body" totalChunks) || total=0
received=$(json_number "$body" receivedChunks) || received=0
missing=""
if [[ $body =~ \"missingChunks\"[[:space:]]*:[[:space:]]*\[([^]]*)\] ]]; then
  # compress 3,4,5,9 into 3-5,9
  IFS=', ' read -r -a list <<< "${BASH_REMATCH[1]}"
  prev="" first=""
  for n in "${list[@]}" ""; do
    [ -z "$n" ] && [ -z "$first" ] && continue
    if [ -n "$n" ] && [ -n "$prev" ] && [ "$n" -eq $(( prev + 1 )) ]; then prev=$n; continue; fi
    if [ -n "$first" ]; then
      [ "$first" = "$prev" ] && missing+="$first," || missing+="$first-$prev,"
    fi
    first=$n prev=$n
  done
  missing=${missing%,}
fi
pct=100; [ "$total" -gt 0 ] && pct=$(( received * 100 / total ))
printf 'identifier: %s\n' "$(json_string "$body" identifier)"
printf 'file:       %s\n' "$(json_string "$body" fileName)"
printf 'size:       %s bytes\n' "$(json_number "$body" totalSize)"
printf 'chunks:     %s of %s received (%s%%), chunk size %s bytes\n' "$received" "$total" "$pct" "$(json_number "$body" chunkSize)"
printf 'missing:    %s\n' "${missing:-none}"
printf 'state:      %s\n' "$(json_string "$body" state)"
printf 'sha256:     %s\n' "$(json_string "$body" sha256 || printf 'not yet known')"

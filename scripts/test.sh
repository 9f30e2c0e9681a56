#!/usr/bin/env bash
# Runs every test of ChunkUpload on a fresh machine: restores NuGet packages, installs the page's npm packages
# (the Server build does `npm ci`), and runs the whole solution's tests. The browser tests install Debian's
# chromium themselves when it is missing. Results (TRX) land in TestResults/.
#   bash scripts/test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: npm is missing; installing nodejs and npm from Debian" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

# The browser tests drive Debian's Chromium and put Debian's nginx in front of the published server (their fixtures
# install both too, and fail under CI=true without them);
# a CJK font makes the screenshot show the unicode file name. All best effort here, as root.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]} from Debian" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } || echo "test.sh: could not install ${missing[*]}" >&2
  fi
fi

rm -rf TestResults
dotnet build ChunkUpload.sln -c Release -nologo -v quiet
dotnet test ChunkUpload.sln -c Release --no-build --logger "trx" --logger "console;verbosity=normal" \
  --results-directory TestResults "$@"

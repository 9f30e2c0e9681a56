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

rm -rf TestResults
dotnet build ChunkUpload.sln -c Release -nologo -v quiet
dotnet test ChunkUpload.sln -c Release --no-build --logger "trx" --logger "console;verbosity=normal" \
  --results-directory TestResults "$@"

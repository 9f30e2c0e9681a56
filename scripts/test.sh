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

# The browser tests drive Debian's Chromium and put Debian's nginx in front of the published server; the shared-store
# tests start a throw-away PostgreSQL and Ceph RADOS Gateway (scripts/services/). Their fixtures and scripts install
# what they need too (and fail under CI=true without it), but test assemblies run in parallel and two apt-get runs at
# once would fight over dpkg's lock: install everything missing here, once, before any test starts.
# A CJK font makes the screenshot show the unicode file name. All best effort here, as root.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=() services=0
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || services=1
  for tool in radosgw ceph-mon ceph-osd; do command -v "$tool" >/dev/null 2>&1 || services=1; done
  if [ ${#missing[@]} -gt 0 ] || [ "$services" = 1 ]; then
    echo "test.sh: installing what the tests need from Debian" >&2
    apt-get update -qq -o DPkg::Lock::Timeout=600 || true
    if [ ${#missing[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null \
        || echo "test.sh: could not install ${missing[*]}" >&2
    fi
    if [ "$services" = 1 ]; then # as scripts/services/*.sh install them: without recommends
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
        postgresql radosgw ceph-mon ceph-osd >/dev/null || echo "test.sh: could not install postgresql and ceph" >&2
    fi
  fi
fi

rm -rf TestResults
dotnet build ChunkUpload.sln -c Release -nologo -v quiet
dotnet test ChunkUpload.sln -c Release --no-build --logger "trx" --logger "console;verbosity=normal" \
  --results-directory TestResults "$@"

#!/usr/bin/env bash
# ChunkUpload benchmark (issue 4): builds everything in Release, installs the npm peers if needed,
# then runs bench/ChunkUpload.Bench, which starts the servers on 127.0.0.1, uploads, prints the table
# and stops exactly the processes it started. See bench/README.md.
#
#   bash bench/run.sh [--size-mib N] [--chunk-mib 8,1] [--inflight C] [--runs R] [more: --help]
#
# Environment: BENCH_ARTIFACTS  build output folder (default /tmp/chunkupload-bench-artifacts),
#              BENCH_SKIP_BUILD=1 to reuse the last build,
#              BENCH_BEFORE=REF   also build the server at git REF (a commit, say main before a change) and run it
#                                 as target chunkupload-before, interleaved: a before/after ratio in one run,
#              BENCH_S3=1         also start a PostgreSQL cluster (with its own durability on) and a Ceph RADOS
#                                 Gateway (scripts/services; Debian packages installed when missing) and run the
#                                 shared-stores scenario: ChunkUpload on PostgreSQL + S3, one and two nodes, against
#                                 the AWS SDK's TransferUtility to the same gateway; both are stopped at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$repo/bench"
artifacts="${BENCH_ARTIFACTS:-/tmp/chunkupload-bench-artifacts}"
cd "$repo"

if [[ ! -d "$bench/node_modules/@tus/server" || ! -d "$bench/node_modules/busboy" ]]; then
  echo "installing the npm peers (npm ci --prefix bench)"
  npm ci --prefix "$bench" --no-audit --no-fund
fi

build() {
  echo "building $1 (Release, artifacts in $artifacts)"
  if ! dotnet build -c Release "$1" --artifacts-path "$artifacts" -nologo -v quiet >"$artifacts.build.log" 2>&1; then
    grep -E "error|Error" "$artifacts.build.log" | sort -u | head -20 >&2
    echo "build of $1 failed (full log: $artifacts.build.log)" >&2
    return 1
  fi
}

if [[ "${BENCH_SKIP_BUILD:-0}" != "1" ]]; then
  mkdir -p "$artifacts"
  if [[ -d "$repo/src/ChunkUpload.Server" ]]; then
    if ! build src/ChunkUpload.Server; then
      # Never benchmark a stale server: without a fresh build only the peers can run.
      rm -rf "$artifacts/bin/ChunkUpload.Server"
      echo "warning: ChunkUpload.Server did not build; only --targets raw,raw-fsync,tus,baseline can run" >&2
    fi
  else
    echo "warning: src/ChunkUpload.Server does not exist yet; only --targets raw,raw-fsync,tus,baseline can run" >&2
  fi
  build bench/RawPut || exit 1
  build bench/ChunkUpload.Bench || exit 1
fi

before_args=()
if [[ -n "${BENCH_BEFORE:-}" ]]; then
  before_tree="$artifacts/before-src"
  before_dll="$artifacts/before/bin/ChunkUpload.Server/release/ChunkUpload.Server.dll"
  if [[ "${BENCH_SKIP_BUILD:-0}" != "1" || ! -f "$before_dll" ]]; then
    echo "building the server at $BENCH_BEFORE (target chunkupload-before)"
    git -C "$repo" worktree remove --force "$before_tree" >/dev/null 2>&1 || rm -rf "$before_tree"
    git -C "$repo" worktree add --detach "$before_tree" "$BENCH_BEFORE" >/dev/null
    ( cd "$before_tree" && dotnet build -c Release src/ChunkUpload.Server --artifacts-path "$artifacts/before" -nologo -v quiet -p:SkipNpmInstall=true \
        >"$artifacts.before-build.log" 2>&1 ) || { echo "build of $BENCH_BEFORE failed (log: $artifacts.before-build.log)" >&2; exit 1; }
    git -C "$repo" worktree remove --force "$before_tree" >/dev/null 2>&1 || true
  fi
  before_args=(--before-server-dll "$before_dll")
fi

s3_args=()
if [[ "${BENCH_S3:-0}" == "1" ]]; then
  services="$artifacts/services"
  cleanup_services() {
    bash "$repo/scripts/services/rgw.sh" stop "$services/rgw" >/dev/null 2>&1 || true
    bash "$repo/scripts/services/postgres.sh" stop "$services/postgres" >/dev/null 2>&1 || true
  }
  trap cleanup_services EXIT
  echo "starting PostgreSQL and the RADOS Gateway for the shared-stores scenario"
  pg=$(PG_DURABLE=1 bash "$repo/scripts/services/postgres.sh" start "$services/postgres" | tail -n 1)
  s3_env=$(bash "$repo/scripts/services/rgw.sh" start "$services/rgw")
  s3_value() { echo "$s3_env" | sed -n "s/^$1=//p"; }
  s3_args=(--pg-conn "$pg" --s3-url "$(s3_value S3__ServiceUrl)" --s3-key "$(s3_value S3__AccessKey)" --s3-secret "$(s3_value S3__SecretKey)")
fi

mkdir -p "$bench/out"
label="commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain -- src 2>/dev/null)" ]]; then
  label="$label with uncommitted changes under src/"
fi
# Not exec: the trap above stops the shared stores when the benchmark ends.
dotnet "$artifacts/bin/ChunkUpload.Bench/release/ChunkUpload.Bench.dll" \
  --server-dll "$artifacts/bin/ChunkUpload.Server/release/ChunkUpload.Server.dll" \
  --rawput-dll "$artifacts/bin/RawPut/release/RawPut.dll" \
  --bench-dir "$bench" \
  --results "$bench/out/results-$(date -u +%Y%m%dT%H%M%SZ)-$$.md" \
  --server-arg "--RateLimit:TokensPerPeriod=0" \
  --relaxed-args "--Upload:FlushToDisk=false" \
  --label "$label${BENCH_BEFORE:+, before = $BENCH_BEFORE}" \
  "${before_args[@]}" \
  "${s3_args[@]}" \
  "$@"

# Shared by postgres.sh and rgw.sh (sourced, not run). Each defines $dir and stop() before calling these.

# debian_install WHAT PACKAGE...: installs Debian packages without recommends, waiting for dpkg's lock (test
# assemblies start services in parallel); exits with a message naming WHAT when it cannot.
debian_install() {
  local what=$1; shift
  echo "$(basename "$0"): installing $* from Debian" >&2
  { apt-get update -qq -o DPkg::Lock::Timeout=600 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >/dev/null; } \
    || { echo "$(basename "$0"): could not install $what" >&2; exit 1; }
}

# leave_watcher: with OWNER_PID set, leaves "$0 watch DIR OWNER_PID" running on its own (its own session), so that
# the service is stopped and DIR removed when that process ends, even when it ends before its exit handlers finish.
leave_watcher() {
  if [[ -n ${OWNER_PID:-} ]]; then
    setsid bash "$0" watch "$dir" "$OWNER_PID" </dev/null >/dev/null 2>&1 &
  fi
}

# watch_owner PID: the watcher's body. Ends with its owner, or as soon as DIR is gone (stopped already).
watch_owner() {
  while kill -0 "$1" 2>/dev/null && [[ -d $dir ]]; do sleep 1; done
  if [[ -d $dir ]]; then stop; fi
  rmdir "$(dirname "$dir")" 2>/dev/null || true # the owner's folder, once its last service is gone
}

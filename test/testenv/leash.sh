#!/usr/bin/env bash
# leash.sh CMD ARGS...
# Runs CMD and ends it when this script's stdin reaches end-of-file. The test harness
# holds the write end of that pipe, so whenever the harness process goes away — clean
# exit, exception, Ctrl-C or even SIGKILL — the pipe closes and the peer is stopped:
# no orphaned etcd or kube-apiserver survives a test run.
set -u
exec 3<&0
"$@" </dev/null &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$child" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$child" 2>/dev/null
  exit 0
}
trap stop TERM INT HUP
( cat <&3 >/dev/null; kill -TERM $$ 2>/dev/null ) &
watcher=$!
wait "$child"
rc=$?
kill "$watcher" 2>/dev/null
exit "$rc"

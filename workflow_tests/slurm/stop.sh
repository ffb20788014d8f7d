#!/usr/bin/env bash
# Stops the daemons that start.sh started under DIR, by their PID files (never by name), slurmd first.
# Safe to run after a failed or partial start and more than once. Exit 1 if one refused to stop.
DIR=$(realpath -m "${1:?usage: stop.sh DIR}")
status=0
for daemon in slurmd slurmctld munged; do
  pidfile="$DIR/$daemon.pid"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  # Only a live process of that name: a stale PID file must not kill an unrelated process.
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$daemon" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
    if [ -e "/proc/$pid" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    if [ -e "/proc/$pid" ] && [ "$(cat "/proc/$pid/stat" 2>/dev/null | awk '{print $3}')" != Z ]; then
      echo "could not stop $daemon (pid $pid)" >&2
      status=1
      continue
    fi
  fi
  rm -f "$pidfile"
done
exit $status

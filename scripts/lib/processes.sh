# Shell helpers shared by the scripts that run extra engines on this
# machine (two-node.sh, remote-engine.sh). Source it after defining
# `say MESSAGE` (the script's own prefixed log line).

# Poll `cmd...` until it succeeds or `seconds` pass.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { say "timed out after ${seconds}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# Stop a process we started, identified by pid file and a marker that
# must appear in its command line (a recycled pid is left alone).
stop_pid() {
  local pidfile=$1 marker=$2 name=$3 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while [ -d "/proc/$pid" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    if [ -d "/proc/$pid" ]; then
      say "$name did not stop in 30s; killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

#!/usr/bin/env bash
# Measures `shoal agent` on this machine: idle CPU and memory, the cost of a
# poll when nothing changed, and push-to-live latency by poll and by webhook.
# Usage: scripts/measure-agent.sh   (needs a swarm manager and the stand-in images)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q
shoal=$PWD/target/release/shoal
work=$(mktemp -d)
stack=measure
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  docker stack rm "$stack" >/dev/null 2>&1 || true
  docker config rm shoal-lease-measure "shoal-state-$stack" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

export GIT_AUTHOR_NAME=m GIT_AUTHOR_EMAIL=m@example.invalid GIT_COMMITTER_NAME=m GIT_COMMITTER_EMAIL=m@example.invalid
git init -q --bare -b main "$work/stacks.git"
git init -q -b main "$work/w"
git -C "$work/w" remote add origin "$work/stacks.git"
stack_file() {
  mkdir -p "$work/w/stacks/$stack"
  printf 'version: "3.8"\nservices:\n  app:\n    image: busybox:1.36\n    command: ["sleep", "86400"]\n    deploy:\n      replicas: %s\n' "$1" > "$work/w/stacks/$stack/stack.yml"
}
push() { git -C "$work/w" add -A; git -C "$work/w" commit -q -m "$1"; git -C "$work/w" push -q origin main; }
stack_file 1; push "add stack"
echo -n "measure-secret" > "$work/secret"
port=19180

start_agent() { # start_agent <interval> [extra agent flags...]
  [ -n "$agent_pid" ] && { kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; }
  local interval=$1; shift
  "$shoal" agent --repo "file://$work/stacks.git" --ref main --interval "$interval" \
    --listen "127.0.0.1:$port" --webhook-secret-file "$work/secret" \
    --cache-dir "$work/cache" --lease-name shoal-lease-measure --lease-ttl 3s "$@" \
    >"$work/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)" = 200 ] && return 0
    sleep 0.2
  done
  echo "agent did not become healthy"; cat "$work/agent.log"; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status"; }
replicas() { docker service inspect "${stack}_app" --format '{{.Spec.Mode.Replicated.Replicas}}' 2>/dev/null || echo none; }
now() { date +%s.%N; }
wait_replicas() { # wait_replicas <n> <start>
  for _ in $(seq 1 600); do
    [ "$(replicas)" = "$1" ] && { awk -v a="$(now)" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; return 0; }
    sleep 0.05
  done
  echo "timeout"
}
hz=$(getconf CLK_TCK)

start_agent 30s
sleep 5
t0=$(cpu_ticks); sleep 60; t1=$(cpu_ticks)
echo "idle (30s interval, 60 s): CPU $(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f%%", 100 * d / hz / 60 }'), RSS $(( $(rss_kib) / 1024 )) MiB"

start_agent 1s
sleep 3
t0=$(cpu_ticks); sleep 30; t1=$(cpu_ticks)
echo "no-change poll (1s interval, 30 polls): $(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.1f ms CPU per poll", 1000 * d / hz / 30 }'), RSS $(( $(rss_kib) / 1024 )) MiB"

start_agent 5s
for n in 2 3 4; do
  stack_file "$n"; t=$(now); push "replicas $n"
  echo "push-to-live by poll (5s interval), replicas $n: $(wait_replicas "$n" "$t") s"
done

start_agent 300s
for n in 5 6 7; do
  stack_file "$n"; t=$(now); push "replicas $n"
  body='{"ref":"refs/heads/main"}'
  sig=$(python3 -c 'import hmac,hashlib,sys; print("sha256="+hmac.new(b"measure-secret", sys.argv[1].encode(), hashlib.sha256).hexdigest())' "$body")
  curl -s -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: $sig" -d "$body" "http://127.0.0.1:$port/webhook"
  echo "push-to-live by webhook (300s interval), replicas $n: $(wait_replicas "$n" "$t") s"
done

# The same webhook latency with three notification targets, one of them down
# (a loopback receiver answering 200 twice, and a port nothing listens on).
webhook_live() { # webhook_live <replicas> <label>
  stack_file "$1"; local t; t=$(now); push "replicas $1"
  body='{"ref":"refs/heads/main"}'
  sig=$(python3 -c 'import hmac,hashlib,sys; print("sha256="+hmac.new(b"measure-secret", sys.argv[1].encode(), hashlib.sha256).hexdigest())' "$body")
  curl -s -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: $sig" -d "$body" "http://127.0.0.1:$port/webhook"
  echo "push-to-live by webhook, $2, replicas $1: $(wait_replicas "$1" "$t") s"
}
python3 - "$work/receiver.port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
PY
receiver_pid=$!
trap 'kill $receiver_pid 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 50); do [ -s "$work/receiver.port" ] && break; sleep 0.1; done
rport=$(cat "$work/receiver.port")
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
n=8
for round in 1 2 3; do
  start_agent 300s
  webhook_live "$n" "no notify targets"; n=$((n + 1))
  start_agent 300s --notify "generic+http://127.0.0.1:$rport/hook" \
    --notify "slack+http://127.0.0.1:$rport/slack" --notify "generic+http://127.0.0.1:$dead/down"
  webhook_live "$n" "3 notify targets (1 down)"; n=$((n + 1))
done

t=$(now); kill -TERM "$agent_pid"; wait "$agent_pid" && rc=0 || rc=$?
agent_pid=""
echo "SIGTERM to exit: $(awk -v a="$(now)" -v b="$t" 'BEGIN { printf "%.2f", a - b }') s, exit code $rc"

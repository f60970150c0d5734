#!/usr/bin/env bash
# Benchmark: `shoal plan` of the generated N-service stack (the one
# scripts/bench.sh uses) against the same engine reached three ways: its
# unix socket (as on a manager), TCP with TLS, and ssh:// (OpenSSH +
# `docker system dial-stdio`). Needs `scripts/remote-engine.sh up`.
# Usage: scripts/bench-remote.sh [N=200] [RUNS=5]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-200}
runs=${2:-5}
RUN=${SHOAL_RE_RUN:-/run/shoal-re}
IP=${SHOAL_RE_IP:-10.232.0.2}
cargo build --release -q
shoal=$(pwd)/target/release/shoal
work=$(mktemp -d)
sock=unix://$RUN/docker.sock
cleanup() {
  docker -H "$sock" stack rm br >/dev/null 2>&1 || true
  [ -S "$work/mux-"* ] 2>/dev/null && ssh -o ControlPath="$(echo "$work"/mux-*)" -O exit "root@$IP" >/dev/null 2>&1 || true
  grep -v "shoal-bench-remote" "$RUN/ssh/authorized_keys" >"$work/keys" 2>/dev/null && cat "$work/keys" >"$RUN/ssh/authorized_keys"
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=lib/bench-stack.sh
. scripts/lib/bench-stack.sh
bench_stack "$work/repo/stacks/br" "$n"

# A client certificate and an ssh key of our own.
certs=$work/certs
mkdir -p "$certs"
cp "$RUN/tls/ca.pem" "$certs/"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench \
  -keyout "$certs/key.pem" -out "$certs/c.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$certs/ext"
openssl x509 -req -in "$certs/c.csr" -CA "$RUN/tls/ca.pem" -CAkey "$RUN/tls/ca-key.pem" \
  -CAcreateserial -CAserial "$certs/ca.srl" -days 1 -extfile "$certs/ext" -out "$certs/cert.pem" 2>/dev/null
ssh-keygen -q -t ed25519 -N "" -C shoal-bench-remote -f "$work/id"
cat "$work/id.pub" >>"$RUN/ssh/authorized_keys"
echo "$IP $(cat "$RUN/ssh/host_ed25519_key.pub")" >"$work/known_hosts"
export SHOAL_SSH_COMMAND="ssh -F /dev/null -i $work/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"

plan() { # plan <label> <env...>
  env "${@:2}" "$shoal" plan --resolve-image never --repo "$work/repo" --stack br --detailed-exitcode >/dev/null
}
now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }

DOCKER_HOST=$sock "$shoal" apply --resolve-image never --repo "$work/repo" --stack br --auto-approve --no-wait >/dev/null
printf '%-10s %s\n' "transport" "plan of $n services, unchanged (s, $runs runs)"
# ssh-mux: the same with OpenSSH connection sharing (what `ControlMaster
# auto` + `ControlPersist` in ~/.ssh/config give): one login for all runs.
for t in unix tls ssh ssh-mux; do
  case $t in
    unix) e=(DOCKER_HOST="$sock") ;;
    tls) e=(DOCKER_HOST="tcp://$IP:2376" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$certs") ;;
    ssh) e=(DOCKER_HOST="ssh://root@$IP") ;;
    ssh-mux) e=(DOCKER_HOST="ssh://root@$IP"
      SHOAL_SSH_COMMAND="$SHOAL_SSH_COMMAND -o ControlMaster=auto -o ControlPath=$work/mux-%C -o ControlPersist=60") ;;
  esac
  times=()
  for _ in $(seq 1 "$runs"); do
    s=$(now)
    plan "$t" "${e[@]}"
    times+=("$(elapsed "$s")")
  done
  printf '%-10s %s\n' "$t" "${times[*]}"
done

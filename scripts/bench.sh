#!/usr/bin/env bash
# Benchmark: shoal vs `docker stack deploy` on a generated stack of N services.
# Prints wall times side by side (first deploy, re-deploy of an unchanged
# file, plan) and how many services each re-deploy rewrote.
# Usage: scripts/bench.sh [N=200] [RUNS=3]   (needs a swarm manager and the stand-in images)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-200}
runs=${2:-3}
cargo build --release -q
shoal=target/release/shoal
work=$(mktemp -d)
trap 'docker stack rm bd >/dev/null 2>&1 || true; docker stack rm bs >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# shellcheck source=lib/bench-stack.sh
. scripts/lib/bench-stack.sh
bench_stack "$work/repo/stacks/bs" "$n"
bench_stack "$work/docker" "$n"

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }
wait_gone() {
  for _ in $(seq 1 300); do
    [ -z "$(docker network ls -q --filter label=com.docker.stack.namespace="$1")" ] && \
    [ -z "$(docker service ls -q --filter label=com.docker.stack.namespace="$1")" ] && return 0
    sleep 0.5
  done
}
versions() { docker service ls -q --filter label=com.docker.stack.namespace="$1" | xargs docker service inspect --format '{{.Version.Index}}' | sort; }
changed() { diff <(echo "$1") <(echo "$2") | grep -c '^>' || true; }

printf '%-28s %14s %14s\n' "$n services ($runs runs)" "docker (s)" "shoal (s)"
for r in $(seq 1 "$runs"); do
  docker stack rm bd >/dev/null 2>&1 || true; docker stack rm bs >/dev/null 2>&1 || true
  wait_gone bd; wait_gone bs
  t=$(now); docker stack deploy --resolve-image never -c "$work/docker/stack.yml" bd >/dev/null 2>&1; d1=$(elapsed "$t")
  t=$(now); "$shoal" apply --resolve-image never --repo "$work/repo" --stack bs --auto-approve --no-wait >/dev/null; s1=$(elapsed "$t")
  vd=$(versions bd); vs=$(versions bs)
  t=$(now); docker stack deploy --resolve-image never -c "$work/docker/stack.yml" bd >/dev/null 2>&1; d2=$(elapsed "$t")
  t=$(now); "$shoal" apply --resolve-image never --repo "$work/repo" --stack bs --auto-approve --no-wait >/dev/null; s2=$(elapsed "$t")
  wd=$(changed "$vd" "$(versions bd)"); ws=$(changed "$vs" "$(versions bs)")
  t=$(now); "$shoal" plan --resolve-image never --repo "$work/repo" --stack bs >/dev/null; s3=$(elapsed "$t")
  printf '%-28s %14.3f %14.3f\n' "run $r: first deploy" "$d1" "$s1"
  printf '%-28s %14.3f %14.3f\n' "run $r: unchanged re-deploy" "$d2" "$s2"
  printf '%-28s %14s %14s\n' "run $r: services rewritten" "$wd" "$ws"
  printf '%-28s %14s %14.3f\n' "run $r: plan only" "-" "$s3"
done

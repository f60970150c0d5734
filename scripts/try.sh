#!/usr/bin/env bash
# Try shoal on the example stack in one command, from a fresh clone:
#
#   scripts/try.sh            release build (first build: several minutes)
#   scripts/try.sh --debug    debug build (faster to build, slower to run)
#
# It builds shoal, makes this Docker Engine a single-node swarm if it is not
# in one (saying so), tags busybox stand-ins under the example's image names
# if they are missing and no registry answers, then plans and applies
# stacks/steedos with the example's test-only age key. DOCKER_HOST is
# honoured. Undo: `docker stack rm steedos` (and `docker swarm leave
# --force` if this script made the swarm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
case "${1:-}" in
  "") ;;
  --debug) profile=debug ;;
  --release) profile=release ;;
  *) echo "usage: scripts/try.sh [--debug|--release]" >&2; exit 2 ;;
esac
say() { printf '\n== %s\n' "$*"; }
die() { echo "try.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
command -v docker >/dev/null 2>&1 || die "docker not found: install the Docker Engine"
docker info >/dev/null 2>&1 || die "no Docker Engine answers${DOCKER_HOST:+ at $DOCKER_HOST}: start dockerd (or set DOCKER_HOST)"

if [ "$profile" = release ]; then say "building shoal (cargo build --release)"; else say "building shoal (cargo build)"; fi
if [ "$profile" = release ]; then cargo build --release --locked --bin shoal; else cargo build --locked --bin shoal; fi
shoal=$PWD/target/$profile/shoal
"$shoal" --version

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case "$state" in
  active)
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] \
      || die "this engine is a swarm worker; run try.sh on a manager" ;;
  inactive)
    say "this engine is not in a swarm: making it a single-node swarm (undo: docker swarm leave --force)"
    # Without --advertise-addr init fails on a machine with several
    # addresses; loopback is enough for a single node.
    docker swarm init >/dev/null 2>&1 || docker swarm init --advertise-addr 127.0.0.1 >/dev/null ;;
  *) die "swarm state is '$state'; wait for it to settle or run docker swarm leave --force" ;;
esac

images=$(sed -n 's/^ *image: *//p' stacks/steedos/stack.yml | sort -u)
missing=()
# Stand-ins are on no registry: asking one for their digests only warns.
resolve=()
for image in $images; do
  docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "${#missing[@]} of the example's images are not on this engine; asking the registry for ${missing[0]}"
  if timeout 60 docker pull -q "${missing[0]}" >/dev/null 2>&1; then
    echo "the registry answers: the swarm pulls the other images as it deploys"
  else
    say "no registry answers: tagging busybox stand-ins under the example's image names (scripts/standin-images.sh)"
    scripts/standin-images.sh
    resolve=(--resolve-image never)
  fi
fi

export SHOAL_AGE_KEY_FILE=stacks/steedos/age-test-key.txt   # the example's test-only key
DATA_NODE=$(docker info --format '{{.Name}}')                # keeps MongoDB's and MinIO's volumes
export DATA_NODE

say "shoal plan --repo . --stack steedos ${resolve[*]:-}"
"$shoal" plan --repo . --stack steedos ${resolve[@]+"${resolve[@]}"}

say "shoal apply --repo . --stack steedos --auto-approve ${resolve[*]:-}"
"$shoal" apply --repo . --stack steedos --auto-approve ${resolve[@]+"${resolve[@]}"}

cat <<NEXT

== steedos is applied. Next:

  export SHOAL_AGE_KEY_FILE=$SHOAL_AGE_KEY_FILE DATA_NODE=$DATA_NODE
  $shoal plan --repo . --stack steedos ${resolve[*]:-}   # again: no changes
  docker service ls --filter label=com.docker.stack.namespace=steedos
  $shoal completions bash > ~/.local/share/bash-completion/completions/shoal
  docker stack rm steedos                   # remove the example
NEXT

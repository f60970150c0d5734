#!/usr/bin/env bash
# A second, separate single-node swarm on this machine, reached the way a
# laptop or a CI runner reaches a remote swarm: over TCP with TLS, and over
# ssh (`docker system dial-stdio`). Its Docker Engine runs in its own network
# namespace and is NOT joined to the local swarm.
#
#   scripts/remote-engine.sh up       tear down leftovers, start the engine (TLS on
#                                     :2376), init its swarm, start sshd, load the
#                                     stand-in images
#   scripts/remote-engine.sh down     stop sshd and the daemons, delete the namespace
#                                     and the state (idempotent)
#   scripts/remote-engine.sh status   daemons, addresses, swarm state
#
# Layout (override with environment variables of the same name):
#   bridge  SHOAL_RE_BRIDGE=shoal-re-br   10.232.0.1/24 on the host
#   netns   SHOAL_RE_NETNS=shoal-re       veth peer 10.232.0.2/24, hostname shoal-re
#   engine  unix:///run/shoal-re/docker.sock (for the script and test cleanup),
#           tcp://10.232.0.2:2376 with TLS (client certificates required),
#           data in /var/lib/shoal-re
#   tls     /run/shoal-re/tls: ca.pem + ca-key.pem (the tests sign their client
#           certificates with it), server-cert.pem, server-key.pem
#   sshd    10.232.0.2:22, host key /run/shoal-re/ssh/host_ed25519_key(.pub),
#           keys in /run/shoal-re/ssh/authorized_keys (root), sessions get
#           DOCKER_HOST=unix:///run/shoal-re/docker.sock so the remote `docker`
#           (the host's binary: the namespace shares the file system) talks to
#           this engine, as it would on a real remote manager
#
# Different names, addresses and paths from scripts/two-node.sh: both can be up.
set -euo pipefail

NETNS=${SHOAL_RE_NETNS:-shoal-re}
BRIDGE=${SHOAL_RE_BRIDGE:-shoal-re-br}
VETH_HOST=${SHOAL_RE_VETH:-shoal-re-h}
VETH_PEER=${VETH_HOST%-h}-w
HOST_IP=${SHOAL_RE_HOST_IP:-10.232.0.1}
ENGINE_IP=${SHOAL_RE_IP:-10.232.0.2}
PREFIX=${SHOAL_RE_PREFIX:-24}
NODE_HOSTNAME=${SHOAL_RE_HOSTNAME:-shoal-re}
RUN=${SHOAL_RE_RUN:-/run/shoal-re}
DATA=${SHOAL_RE_DATA:-/var/lib/shoal-re}
SOCK=unix://$RUN/docker.sock
TLS=$RUN/tls
SSH=$RUN/ssh
HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "remote-engine: $*"; }
die() { echo "remote-engine: error: $*" >&2; exit 1; }
engine() { docker -H "$SOCK" "$@"; }
in_ns() { nsenter --net="/var/run/netns/$NETNS" "$@"; }

# wait_for, stop_pid
# shellcheck source=lib/processes.sh
. "$HERE/lib/processes.sh"
# netns_create, netns_remove, engine_config, engine_start, engine_stop
# shellcheck source=lib/netns-engine.sh
. "$HERE/lib/netns-engine.sh"

down() {
  stop_pid "$SSH/sshd.pid" "$SSH/sshd_config" "sshd"
  if engine info >/dev/null 2>&1; then
    say "removing the engine's services"
    engine service ls -q | xargs -r docker -H "$SOCK" service rm >/dev/null 2>&1 || true
  fi
  engine_stop "$RUN" "$DATA" ""
  netns_remove "$NETNS" "$VETH_HOST"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "deleting bridge $BRIDGE"
    ip link delete "$BRIDGE"
  fi
  if [ -d "$RUN" ] || [ -d "$DATA" ]; then
    say "removing $RUN and $DATA"
    rm -rf "$RUN" "$DATA"
  fi
  say "down"
}

network() {
  netns_create "$NETNS" "$BRIDGE" "$VETH_HOST" "$VETH_PEER" "$HOST_IP" "$ENGINE_IP" "$PREFIX"
  # No default route: the engine reaches only this subnet, so a registry it
  # cannot reach (no network on CI) fails at once instead of hanging until
  # a timeout in every image pull and digest lookup.
  wait_for 10 "$ENGINE_IP from the host" busybox ping -c1 -W1 "$ENGINE_IP"
}

# A CA and the engine's server certificate (SAN: its address and hostname).
# The tests make their own client certificates, signed by this CA, and their
# own wrong CA.
certificates() {
  say "making a CA and the engine's server certificate in $TLS"
  mkdir -p "$TLS"
  chmod 700 "$TLS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=shoal remote-engine test CA" -keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$NODE_HOSTNAME" -keyout "$TLS/server-key.pem" -out "$TLS/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$ENGINE_IP" "$NODE_HOSTNAME" >"$TLS/server.ext"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$TLS/server.ext" -out "$TLS/server-cert.pem" 2>/dev/null
  rm -f "$TLS/server.csr" "$TLS/server.ext"
}

daemons() {
  engine_config "$RUN" "$DATA" shoal-re "$ENGINE_IP:2376" "$TLS"
  engine_start "$RUN" "$NETNS" "$NODE_HOSTNAME" ""
  say "initialising a single-node swarm on $ENGINE_IP (separate from the local swarm)"
  engine swarm init --advertise-addr "$ENGINE_IP" --listen-addr "$ENGINE_IP:2377" >/dev/null
  wait_for 60 "the swarm" engine node ls
}

sshd_up() {
  local sshd
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  [ -x "$sshd" ] || die "sshd not found: apt-get install openssh-server (or scripts/git-servers.sh install)"
  mkdir -p "$SSH" /run/sshd
  chmod 700 "$SSH"
  ssh-keygen -q -t ed25519 -N "" -C "$NODE_HOSTNAME host key" -f "$SSH/host_ed25519_key"
  : >"$SSH/authorized_keys"
  chmod 600 "$SSH/authorized_keys"
  cat >"$SSH/sshd_config" <<EOF
ListenAddress $ENGINE_IP:22
HostKey $SSH/host_ed25519_key
PidFile $SSH/sshd.pid
AuthorizedKeysFile $SSH/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
# Lets a test key run with environment="PATH=..." (the missing-docker case).
PermitUserEnvironment PATH
SetEnv DOCKER_HOST=$SOCK
EOF
  say "starting sshd on $ENGINE_IP:22 in $NETNS (log $SSH/sshd.log)"
  in_ns "$sshd" -f "$SSH/sshd_config" -E "$SSH/sshd.log"
  wait_for 10 "sshd" test -s "$SSH/sshd.pid" || { cat "$SSH/sshd.log"; die "sshd did not start"; }
}

images() {
  say "building the stand-in images on the engine"
  if ! "$HERE/standin-images.sh" "$SOCK" >/dev/null; then
    say "building failed; copying the stand-in images from the local engine instead"
    local tags
    tags=$(docker image ls --format '{{.Repository}}:{{.Tag}}' --filter reference='*:*' | grep -v '<none>')
    # shellcheck disable=SC2086
    docker save $tags | engine load
  fi
}

status() {
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NETNS"; then
    echo "namespace $NETNS: present ($ENGINE_IP)"
  else
    echo "namespace $NETNS: absent"
  fi
  if engine info >/dev/null 2>&1; then
    echo "engine $SOCK (tcp://$ENGINE_IP:2376, TLS): up, swarm $(engine info --format '{{.Swarm.LocalNodeState}}'), node $(engine info --format '{{.Name}}')"
  else
    echo "engine $SOCK: down"
  fi
  if [ -s "$SSH/sshd.pid" ] && [ -d "/proc/$(cat "$SSH/sshd.pid")" ]; then
    echo "sshd: up on $ENGINE_IP:22 (pid $(cat "$SSH/sshd.pid"))"
  else
    echo "sshd: down"
  fi
}

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, daemons)"
case "${1:-}" in
  up)
    command -v openssl >/dev/null || die "openssl not found: apt-get install openssl"
    down
    network
    certificates
    daemons
    sshd_up
    images
    status
    say "up: tcp://$ENGINE_IP:2376 (TLS, CA $TLS/ca.pem) and ssh://root@$ENGINE_IP"
    ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

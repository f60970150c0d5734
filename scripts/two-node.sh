#!/usr/bin/env bash
# A real second swarm node on this machine: a worker Docker Engine in its
# own network namespace, joined to the local swarm.
#
#   scripts/two-node.sh up       tear down leftovers, start the worker, join it,
#                                load the stand-in images, verify overlay networking
#   scripts/two-node.sh down     remove the worker node, stop its daemons, delete
#                                the namespace and its state (idempotent)
#   scripts/two-node.sh status   nodes, daemons and addresses
#   scripts/two-node.sh verify   run the cross-node overlay check again
#
# Layout (override with environment variables of the same name):
#   bridge  SHOAL_N2_BRIDGE=shoal-n2-br  10.231.0.1/24 on the host; the manager
#           advertises this address (a bridge, so the address survives `down`)
#   netns   SHOAL_N2_NETNS=shoal-n2      veth peer 10.231.0.2/24, hostname shoal-n2
#   engine  unix:///run/shoal-n2/docker.sock, data in /var/lib/shoal-n2
#
# The worker's node hostname is SHOAL_N2_HOSTNAME (default shoal-n2), so
# placement constraints can target it: node.hostname==shoal-n2.
set -euo pipefail

NETNS=${SHOAL_N2_NETNS:-shoal-n2}
BRIDGE=${SHOAL_N2_BRIDGE:-shoal-n2-br}
VETH_HOST=${SHOAL_N2_VETH:-shoal-n2-h}
VETH_PEER=${VETH_HOST%-h}-w
HOST_IP=${SHOAL_N2_HOST_IP:-10.231.0.1}
WORKER_IP=${SHOAL_N2_WORKER_IP:-10.231.0.2}
PREFIX=${SHOAL_N2_PREFIX:-24}
NODE_HOSTNAME=${SHOAL_N2_HOSTNAME:-shoal-n2}
RUN=${SHOAL_N2_RUN:-/run/shoal-n2}
DATA=${SHOAL_N2_DATA:-/var/lib/shoal-n2}
SOCK=unix://$RUN/docker.sock
# The overlay check's service and network: one name per run, so a check
# left behind by an interrupted run (or still being torn down by the
# swarm) never collides with this one; `remove_checks` clears them all.
CHECK_PREFIX=shoal-n2-check
CHECK=$CHECK_PREFIX-$$
HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "two-node: $*"; }
die() { echo "two-node: error: $*" >&2; exit 1; }
worker() { docker -H "$SOCK" "$@"; }

# wait_for, stop_pid
# shellcheck source=lib/processes.sh
. "$HERE/lib/processes.sh"
# netns_create, netns_remove, engine_config, engine_start, engine_stop
# shellcheck source=lib/netns-engine.sh
. "$HERE/lib/netns-engine.sh"

manager_addr() { docker info --format '{{.Swarm.NodeAddr}}'; }

# Node IDs of the worker as the manager knows it (hostname or address).
worker_nodes() {
  docker node ls -q 2>/dev/null | while read -r id; do
    docker node inspect "$id" --format '{{.ID}} {{.Description.Hostname}} {{.Status.Addr}}' 2>/dev/null
  done | awk -v h="$NODE_HOSTNAME" -v a="$WORKER_IP" '$2 == h || $3 == a {print $1}'
}

down() {
  if worker info >/dev/null 2>&1; then
    say "worker leaves the swarm"
    worker swarm leave --force >/dev/null 2>&1 || true
  fi
  if docker info >/dev/null 2>&1; then
    remove_checks
    for id in $(worker_nodes); do
      say "removing node $id from the swarm"
      docker node rm --force "$id" >/dev/null || true
    done
  fi
  engine_stop "$RUN" "$DATA" "worker "
  netns_remove "$NETNS" "$VETH_HOST"
  if [ -d "$RUN" ] || [ -d "$DATA" ]; then
    say "removing $RUN and $DATA"
    rm -rf "$RUN" "$DATA"
  fi
  # The bridge holds the manager's advertise address; keep it while the
  # manager uses it, so the single-node swarm stays healthy.
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    if docker info >/dev/null 2>&1 && [ "$(manager_addr)" = "$HOST_IP" ]; then
      say "keeping bridge $BRIDGE ($HOST_IP): the manager advertises on it"
    else
      say "deleting bridge $BRIDGE"
      ip link delete "$BRIDGE"
    fi
  fi
  say "down"
}

network() {
  netns_create "$NETNS" "$BRIDGE" "$VETH_HOST" "$VETH_PEER" "$HOST_IP" "$WORKER_IP" "$PREFIX"
  ip -n "$NETNS" route add default via "$HOST_IP"
  wait_for 10 "$HOST_IP from the namespace" nsenter --net="/var/run/netns/$NETNS" busybox ping -c1 -W1 "$HOST_IP"
}

daemons() {
  engine_config "$RUN" "$DATA" shoal-n2
  engine_start "$RUN" "$NETNS" "$NODE_HOSTNAME" "worker "
}

join() {
  "$HERE/ensure-swarm.sh" >/dev/null
  local addr
  addr=$(manager_addr)
  if [ "$addr" != "$HOST_IP" ]; then
    say "manager advertises $addr; re-initialising it on $HOST_IP (--force-new-cluster keeps services)"
    docker swarm init --force-new-cluster --advertise-addr "$HOST_IP" >/dev/null
    wait_for 60 "the manager" docker node ls
  fi
  raft_nat
  say "joining the worker to $HOST_IP:2377"
  worker swarm join --token "$(docker swarm join-token -q worker)" \
    --advertise-addr "$WORKER_IP" --listen-addr "$WORKER_IP:2377" "$HOST_IP:2377" >/dev/null
  wait_for 60 "node $NODE_HOSTNAME to be ready" node_ready
}

# `swarm init --force-new-cluster --advertise-addr` updates the node and
# gossip addresses but not the manager's raft address (docker/for-linux#523),
# which the worker is then told to use for the control plane (2377) and to
# join the gossip cluster (7946). When that address is not HOST_IP (on this
# machine it is 127.0.0.1 from `ensure-swarm.sh`), translate it to HOST_IP
# inside the worker's namespace.
raft_nat() {
  local raft_ip
  raft_ip=$(docker node inspect self --format '{{.ManagerStatus.Addr}}')
  raft_ip=${raft_ip%:*}
  [ "$raft_ip" != "$HOST_IP" ] || return 0
  say "manager raft address is $raft_ip; translating $raft_ip:2377,7946 to $HOST_IP inside $NETNS"
  local ns=(nsenter --net="/var/run/netns/$NETNS")
  "${ns[@]}" sysctl -qw net.ipv4.conf.all.route_localnet=1
  local proto port
  for proto in tcp udp; do
    for port in 2377 7946; do
      "${ns[@]}" iptables -t nat -A OUTPUT -d "$raft_ip" -p "$proto" --dport "$port" \
        -j DNAT --to-destination "$HOST_IP:$port"
    done
  done
  "${ns[@]}" iptables -t nat -A POSTROUTING -s 127.0.0.0/8 -d "$HOST_IP" -j SNAT --to-source "$WORKER_IP"
}

node_ready() {
  local id
  id=$(worker info --format '{{.Swarm.NodeID}}')
  [ -n "$id" ] && [ "$(docker node inspect "$id" --format '{{.Status.State}}')" = ready ]
}

images() {
  say "building the stand-in images on the worker"
  if ! "$HERE/standin-images.sh" "$SOCK"; then
    say "building failed; copying the stand-in images from the manager instead"
    local tags
    tags=$(docker image ls --format '{{.Repository}}:{{.Tag}}' --filter reference='*:*' | grep -v '<none>')
    # shellcheck disable=SC2086
    docker save $tags | worker load
  fi
}

task_field() { docker inspect "$1" --format "$2"; }

# A 2-replica service on an overlay network, one task per node; each task
# must reach the other's overlay address.
verify() {
  say "verifying overlay networking across the nodes"
  remove_checks
  docker network create --driver overlay --attachable "$CHECK" >/dev/null
  docker service create --detach --name "$CHECK" --network "$CHECK" --replicas 2 \
    --replicas-max-per-node 1 busybox:1.36 sleep 100000 >/dev/null
  local ok=0
  if wait_for 120 "2 running tasks of $CHECK" two_tasks_running; then
    local tasks t1 t2 ip1 ip2 c1 c2 n1 manager_id
    tasks=$(docker service ps "$CHECK" -q --filter desired-state=running)
    t1=$(echo "$tasks" | sed -n 1p); t2=$(echo "$tasks" | sed -n 2p)
    ip1=$(task_ip "$t1"); ip2=$(task_ip "$t2")
    c1=$(task_field "$t1" '{{.Status.ContainerStatus.ContainerID}}')
    c2=$(task_field "$t2" '{{.Status.ContainerStatus.ContainerID}}')
    n1=$(task_field "$t1" '{{.NodeID}}')
    manager_id=$(docker info --format '{{.Swarm.NodeID}}')
    local e1=(docker) e2=(docker -H "$SOCK")
    if [ "$n1" != "$manager_id" ]; then e1=(docker -H "$SOCK"); e2=(docker); fi
    say "task on node 1: $ip1, task on node 2: $ip2"
    if "${e1[@]}" exec "$c1" ping -c2 -W2 "$ip2" >/dev/null && "${e2[@]}" exec "$c2" ping -c2 -W2 "$ip1" >/dev/null; then
      say "overlay OK: the tasks on both nodes reach each other"
      ok=1
    else
      say "overlay FAILED: the tasks cannot reach each other"
    fi
  else
    docker service ps --no-trunc "$CHECK" || true
  fi
  remove_checks
  [ "$ok" = 1 ] || die "overlay networking across the two nodes does not work"
}

# Every check service and network, this run's or one an interrupted run
# left behind.
remove_checks() {
  local services
  services=$(docker service ls -q --filter "name=$CHECK_PREFIX" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$services" ] || docker service rm $services >/dev/null 2>&1 || true
  wait_for 60 "the overlay check networks to be removed" check_networks_gone
}

# True once no check network is left; removes (by ID) those that are, so
# polling it drives the removal.
check_networks_gone() {
  local ids
  ids=$(docker network ls --format '{{.ID}} {{.Name}}' | awk -v p="$CHECK_PREFIX" 'index($2, p) == 1 {print $1}')
  [ -z "$ids" ] && return 0
  # shellcheck disable=SC2086
  docker network rm $ids >/dev/null 2>&1 || true
  return 1
}

two_tasks_running() {
  local nodes
  nodes=$(docker service ps "$CHECK" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' | grep -c Running || true)
  [ "$nodes" = 2 ]
}

task_ip() {
  docker inspect "$1" --format "{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"$CHECK\"}}{{index .Addresses 0}}{{end}}{{end}}" | cut -d/ -f1
}

status() {
  echo "manager advertise address: $(manager_addr 2>/dev/null || echo '?')"
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NETNS"; then
    echo "namespace $NETNS: present ($WORKER_IP)"
  else
    echo "namespace $NETNS: absent"
  fi
  if worker info >/dev/null 2>&1; then
    echo "worker engine $SOCK: up, swarm $(worker info --format '{{.Swarm.LocalNodeState}}')"
  else
    echo "worker engine $SOCK: down"
  fi
  docker node ls
}

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, daemons)"
case "${1:-}" in
  up)
    down
    network
    daemons
    join
    images
    verify
    status
    say "up: worker engine at $SOCK (node hostname $NODE_HOSTNAME)"
    ;;
  down) down ;;
  status) status ;;
  verify) verify ;;
  *) echo "usage: $0 up|down|status|verify" >&2; exit 2 ;;
esac

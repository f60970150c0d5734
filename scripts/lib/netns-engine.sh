# A Docker Engine (containerd + dockerd) in its own network namespace on
# this machine, for the scripts that run extra engines (two-node.sh,
# remote-engine.sh): the namespace and its veth pair, the daemons' config
# files, starting and stopping the daemons. What the engine is for (a
# worker joined to the local swarm, a separate remote swarm) stays in the
# scripts. Source it after lib/processes.sh and after defining `say MESSAGE`
# and `die MESSAGE`.
#
# The daemons' files live in RUN (sockets, pid files, logs, configs) and
# DATA (images, containers); the engine listens on unix://RUN/docker.sock.
# ROLE names the engine in log lines ("worker " gives "worker dockerd",
# "the worker engine"; "" gives "dockerd", "the engine").

# Bridge BRIDGE with HOST_IP/PREFIX on the host (created when missing), the
# namespace NETNS, and a veth pair VETH_HOST (on the bridge) / VETH_PEER
# (in the namespace, IP/PREFIX). No route: the caller decides.
netns_create() {
  local netns=$1 bridge=$2 veth_host=$3 veth_peer=$4 host_ip=$5 ip=$6 prefix=$7
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    say "creating bridge $bridge with $host_ip/$prefix"
    ip link add "$bridge" type bridge
  fi
  ip addr replace "$host_ip/$prefix" dev "$bridge"
  ip link set "$bridge" up
  say "creating network namespace $netns ($ip/$prefix)"
  ip netns add "$netns"
  ip link add "$veth_host" type veth peer name "$veth_peer"
  ip link set "$veth_peer" netns "$netns"
  ip link set "$veth_host" master "$bridge"
  ip link set "$veth_host" up
  ip -n "$netns" link set lo up
  ip -n "$netns" addr add "$ip/$prefix" dev "$veth_peer"
  ip -n "$netns" link set "$veth_peer" up
}

# Delete the namespace NETNS and the host end VETH_HOST of its veth pair
# (idempotent). The bridge is the caller's to keep or delete.
netns_remove() {
  local netns=$1 veth_host=$2
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$netns"; then
    say "deleting network namespace $netns"
    ip netns delete "$netns"
  fi
  if ip link show "$veth_host" >/dev/null 2>&1; then
    ip link delete "$veth_host" 2>/dev/null || true
  fi
}

# RUN/containerd.toml and RUN/daemon.json: the engine's own config files
# (/etc/docker/daemon.json names the local engine's data-root), with the
# local engine's storage driver and MTU, and CGROUP as its cgroup parent.
# With TCP_ADDR and TLS_DIR it also listens on tcp://TCP_ADDR with TLS and
# requires client certificates signed by TLS_DIR/ca.pem.
engine_config() {
  local run=$1 data=$2 cgroup=$3 tcp_addr=${4:-} tls_dir=${5:-}
  mkdir -p "$run/containerd" "$data/containerd"
  cat >"$run/containerd.toml" <<EOF
version = 2
root = "$data/containerd"
state = "$run/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run/containerd/containerd.sock"
[ttrpc]
  address = "$run/containerd/containerd.sock.ttrpc"
[debug]
  address = "$run/containerd/debug.sock"
EOF
  local driver mtu hosts="\"unix://$run/docker.sock\"" tls=""
  driver=$(docker info --format '{{.Driver}}')
  mtu=$(docker network inspect bridge --format '{{index .Options "com.docker.network.driver.mtu"}}' 2>/dev/null || true)
  if [ -n "$tcp_addr" ]; then
    hosts="$hosts, \"tcp://$tcp_addr\""
    tls="
  \"tls\": true,
  \"tlsverify\": true,
  \"tlscacert\": \"$tls_dir/ca.pem\",
  \"tlscert\": \"$tls_dir/server-cert.pem\",
  \"tlskey\": \"$tls_dir/server-key.pem\","
  fi
  cat >"$run/daemon.json" <<EOF
{
  "data-root": "$data/docker",
  "exec-root": "$run/exec",
  "pidfile": "$run/docker.pid",
  "hosts": [$hosts],$tls
  "containerd": "$run/containerd/containerd.sock",
  "storage-driver": "$driver",
  "mtu": ${mtu:-1500},
  "iptables": false,
  "ip-masq": false,
  "cgroup-parent": "$cgroup",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
EOF
}

# Start containerd, then dockerd with hostname NODE_HOSTNAME, in the
# namespace NETNS, from the config files engine_config wrote; wait until
# the engine answers (die with the end of its log if it does not).
engine_start() {
  local run=$1 netns=$2 node_hostname=$3 role=$4
  # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then
  # fails with "Devices cgroup isn't mounted".
  say "starting containerd in $netns (log $run/containerd.log)"
  setsid nohup nsenter --net="/var/run/netns/$netns" \
    containerd --config "$run/containerd.toml" >"$run/containerd.log" 2>&1 </dev/null &
  echo $! >"$run/containerd.pid"
  wait_for 30 "containerd" test -S "$run/containerd/containerd.sock" \
    || { tail -20 "$run/containerd.log"; die "containerd did not start"; }
  say "starting dockerd in $netns as host $node_hostname (log $run/dockerd.log)"
  setsid nohup nsenter --net="/var/run/netns/$netns" unshare --uts -- \
    sh -c 'hostname "$1" && exec dockerd --config-file "$2"' sh "$node_hostname" "$run/daemon.json" \
    >"$run/dockerd.log" 2>&1 </dev/null &
  wait_for 60 "the ${role}engine" docker -H "unix://$run/docker.sock" info \
    || { tail -30 "$run/dockerd.log"; die "${role}dockerd did not start"; }
}

# Stop dockerd, the container shims and containerd that engine_start
# started, and unmount what the engine left below RUN and DATA
# (idempotent).
engine_stop() {
  local run=$1 data=$2 role=$3
  stop_pid "$run/docker.pid" "$run/daemon.json" "${role}dockerd"
  # Container shims outlive containerd; they are ours if they talk to our socket.
  local cmdline shim
  for cmdline in /proc/[0-9]*/cmdline; do
    shim=$({ tr '\0' ' ' <"$cmdline"; } 2>/dev/null || true)
    case "$shim" in
      containerd-shim*"-address $run/containerd/containerd.sock"*|*/containerd-shim*"-address $run/containerd/containerd.sock"*)
        shim=${cmdline#/proc/}; shim=${shim%/cmdline}
        say "stopping leftover container shim (pid $shim)"
        kill -KILL "$shim" 2>/dev/null || true ;;
    esac
  done
  stop_pid "$run/containerd.pid" "$run/containerd.toml" "${role}containerd"
  # Mounts the engine left (overlay layers, shm, netns bind mounts).
  local m
  for m in $(awk -v r="$run" -v d="$data" 'index($2, r) == 1 || index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    say "unmounting $m"
    umount -l "$m" 2>/dev/null || true
  done
}

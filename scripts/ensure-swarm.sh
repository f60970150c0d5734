#!/usr/bin/env bash
# Make sure a Docker Engine is running and is a single-node swarm manager.
set -euo pipefail
if ! docker info >/dev/null 2>&1; then
  echo "docker daemon not reachable; starting dockerd"
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then :; else
    (setsid nohup /usr/sbin/dockerd >/tmp/dockerd.log 2>&1 &)
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /tmp/dockerd.log"; tail -20 /tmp/dockerd.log || true; exit 1; }
fi
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
ctl=$(docker info --format '{{.Swarm.ControlAvailable}}')
if [ "$state" = "active" ] && [ "$ctl" != "true" ]; then
  docker swarm leave --force
  state=inactive
fi
if [ "$state" != "active" ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
docker info --format 'swarm: {{.Swarm.LocalNodeState}}, nodes: {{.Swarm.Nodes}}, engine {{.ServerVersion}}'

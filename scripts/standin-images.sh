#!/usr/bin/env bash
# No registry is reachable: build a tiny busybox image and tag it with every
# image name the example stacks and the tests use.
set -euo pipefail
engine_host=${1:-}
dockercmd=(docker)
[ -n "$engine_host" ] && dockercmd=(docker -H "$engine_host")
bb=$(command -v busybox) || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bb" "$ctx/busybox"
# The entrypoint runs a given command (`sleep 60`, `mongosh ...`); given no
# command or only flags (`--providers.swarm=true`), it acts as the daemon:
# an HTTP server on :5100 (for health checks) and a long sleep.
cat > "$ctx/standin" <<'SCRIPT'
#!/bin/sh
case "$1" in
  ""|-*) exec /usr/local/bin/daemon ;;
  *) exec "$@" ;;
esac
SCRIPT
cat > "$ctx/daemon" <<'SCRIPT'
#!/bin/sh
mkdir -p /tmp/www && echo ok > /tmp/www/index.html
httpd -p 5100 -h /tmp/www
exec sleep 2147483647
SCRIPT
printf '#!/bin/sh\necho 1\n' > "$ctx/mongosh"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY standin daemon mongosh /usr/local/bin/
RUN chmod 755 /usr/local/bin/standin /usr/local/bin/daemon /usr/local/bin/mongosh && \
    for d in mongod redis-server traefik minio; do ln -s daemon /usr/local/bin/$d; done
ENV PATH=/usr/local/bin:/bin
ENTRYPOINT ["/usr/local/bin/standin"]
DOCKERFILE
"${dockercmd[@]}" build -q -t shoal-standin:latest "$ctx" >/dev/null
tags=(
  busybox:latest busybox:1.36 alpine:3.20 nginx:1.27
  traefik:v2.11 traefik:v3.1 redis:7.2 mongo:7.0 minio/minio:RELEASE.2024-06-13T22-53-53Z
  steedos/steedos-community:2.7 steedos/steedos-enterprise:2.7 shoal:latest
)
for t in "${tags[@]}"; do "${dockercmd[@]}" tag shoal-standin:latest "$t"; done
echo "stand-in images: ${tags[*]}"

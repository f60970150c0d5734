#!/usr/bin/env bash
# No registry is reachable: build a tiny busybox image and tag it with every
# image name the example stacks and the tests use.
set -euo pipefail
engine_host=${1:-}
dockercmd=(docker)
[ -n "$engine_host" ] && dockercmd=(docker -H "$engine_host")
bb=$(command -v busybox)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bb" "$ctx/busybox"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sleep", "1000000"]
DOCKERFILE
"${dockercmd[@]}" build -q -t shoal-standin:latest "$ctx" >/dev/null
tags=(
  busybox:latest busybox:1.36 alpine:3.20 nginx:1.27
  traefik:v2.11 traefik:v3.1 redis:7.2 mongo:7.0 minio/minio:RELEASE.2024-06-13T22-53-53Z
  steedos/steedos-community:2.7 steedos/steedos-enterprise:2.7 shoal:latest
)
for t in "${tags[@]}"; do "${dockercmd[@]}" tag shoal-standin:latest "$t"; done
echo "stand-in images: ${tags[*]}"

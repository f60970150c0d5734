#!/usr/bin/env bash
# Build the shoal agent image without pulling anything: a `FROM scratch` image
# holding the shoal binary, exactly the shared libraries it links (ldd, with
# the dynamic loader), CA certificates (HTTPS git), a non-root user, /tmp and
# the git cache directory. Git over ssh needs no ssh binary: git2 runs
# libssh2 in-process (ldd shows libssl/libcrypto, which libssh2 uses).
#
#   scripts/build-image.sh [--profile debug|release] [--tag TAG]... [--binary PATH]
#
#   --profile  cargo profile to build (default release)
#   --binary   use this already built shoal binary instead of building one
#              (the tests pass the debug binary cargo built for them)
#   --tag      image tag, repeatable; default: shoal:<version>-<commit>,
#              shoal:<version> and shoal:latest (the tag scheme, see README)
#
# DOCKER_HOST is honoured as by the docker CLI. Prints the tags and the size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
binary=
tags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs debug or release}; shift 2 ;;
    --tag) tags+=("${2:?--tag needs a name}"); shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  debug|release) ;;
  *) echo "build-image.sh: --profile must be debug or release, not $profile" >&2; exit 2 ;;
esac

if [ -z "$binary" ]; then
  if [ "$profile" = release ]; then cargo build --release --locked --bin shoal; else cargo build --locked --bin shoal; fi
  binary=target/$profile/shoal
fi
[ -x "$binary" ] || { echo "build-image.sh: $binary is not an executable" >&2; exit 1; }

# `shoal 0.1.0 (commit 3f2a9c1)`: the tags come from the binary itself.
version_line=$("$binary" --version)
version=$(echo "$version_line" | awk '{print $2}')
commit=$(echo "$version_line" | sed -n 's/.*(commit \([^)]*\)).*/\1/p')
[ -n "$version" ] && [ -n "$commit" ] || { echo "build-image.sh: cannot read the version from: $version_line" >&2; exit 1; }
if [ ${#tags[@]} -eq 0 ]; then
  tags=("shoal:$version-$commit" "shoal:$version" "shoal:latest")
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
# Stripped: symbols are not needed at run time (panics are errors, not
# backtraces, for users), and they triple the debug binary's size.
if command -v strip >/dev/null 2>&1; then
  strip -o "$root/usr/local/bin/shoal" "$binary"
else
  cp "$binary" "$root/usr/local/bin/shoal"
fi
chmod 755 "$root/usr/local/bin/shoal"

# Every library the binary links, at the path the loader finds it, and the
# loader itself (the `/lib64/ld-linux-x86-64.so.2` line, without `=>`).
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
[ -n "$libs" ] || { echo "build-image.sh: ldd found no libraries in $binary (a static binary needs none; remove this check)" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
shoal:x:10001:10001:shoal agent:/home/shoal:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
shoal:x:10001:
nogroup:x:65534:
GROUP
echo "hosts: files dns" > "$root/etc/nsswitch.conf"

# Directories the agent writes, owned by its user: the git cache (a named
# volume mounted there starts with this ownership) and HOME.
# COPY creates a missing destination with --chown's owner, its parents root's.
mkdir -p "$ctx/empty"

cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 empty/ /var/cache/shoal/
COPY --chown=10001:10001 empty/ /home/shoal/
LABEL org.opencontainers.image.title="shoal" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$commit"
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    SHOAL_CACHE_DIR=/var/cache/shoal \\
    HOME=/home/shoal
# Non-root; the Docker socket needs its group: run with
# --user 10001:\$(stat -c %g /var/run/docker.sock) (see stacks/shoal/README.md).
USER 10001:10001
EXPOSE 9180
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["/usr/local/bin/shoal", "healthcheck"]
# SIGTERM makes the agent release its lease and exit within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/shoal"]
CMD ["agent", "--help"]
DOCKERFILE

# The classic builder needs nothing but the engine; BuildKit without the
# buildx plugin refuses to run, so fall back to the classic builder then.
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
tag_args=()
for t in "${tags[@]}"; do tag_args+=(-t "$t"); done
docker build -q "${tag_args[@]}" "$ctx" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "${tags[0]}")
echo "built ${tags[*]} ($profile, $version_line, $((size / 1024 / 1024)) MiB)"

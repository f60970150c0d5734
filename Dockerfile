# shoal image for a release pipeline (a registry provides the base images):
#
#   docker build --build-arg SHOAL_GIT_COMMIT=$(git rev-parse --short HEAD) \
#     -t shoal:0.1.0-3f2a9c1 -t shoal:0.1.0 -t shoal:latest .
#
# It produces the layout of scripts/build-image.sh (which builds the same
# image from a local binary without pulling anything, and is what the tests
# use): a scratch runtime with the binary, exactly the shared libraries it
# links and the dynamic loader, CA certificates (HTTPS git), a non-root user
# (10001), /tmp and the git cache directory; a HEALTHCHECK by `shoal
# healthcheck` (no shell, no curl). Git over ssh needs no ssh binary: git2
# runs libssh2 in-process. Tags: README "Install the agent image".

FROM rust:1-bookworm AS builder
# git2 builds libgit2 and libssh2 from source; libssh2 links OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
# Cargo.toml names the bench target; cargo wants its file to exist.
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# The build context has no .git: the commit comes in as a build argument.
ARG SHOAL_GIT_COMMIT=unknown
# Make cargo see the real sources as newer than the dummy build.
RUN touch src/main.rs src/lib.rs \
 && SHOAL_GIT_COMMIT=$SHOAL_GIT_COMMIT cargo build --release --locked --bin shoal \
 && strip target/release/shoal
# The runtime tree: the same steps as scripts/build-image.sh.
RUN set -eu; root=/rootfs; \
    mkdir -p $root/usr/local/bin $root/etc/ssl/certs $root/tmp $root/var/cache/shoal $root/home/shoal; \
    chmod 1777 $root/tmp; \
    cp target/release/shoal $root/usr/local/bin/shoal; \
    for lib in $(ldd target/release/shoal | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do \
      mkdir -p $root$(dirname $lib); cp -L $lib $root$lib; \
    done; \
    cp -L /etc/ssl/certs/ca-certificates.crt $root/etc/ssl/certs/; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nshoal:x:10001:10001:shoal agent:/home/shoal:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > $root/etc/passwd; \
    printf 'root:x:0:\nshoal:x:10001:\nnogroup:x:65534:\n' > $root/etc/group; \
    echo 'hosts: files dns' > $root/etc/nsswitch.conf; \
    chown 10001:10001 $root/var/cache/shoal $root/home/shoal

FROM scratch
COPY --from=builder /rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SHOAL_CACHE_DIR=/var/cache/shoal \
    HOME=/home/shoal
# Non-root; the Docker socket needs its group: run with
# --user 10001:$(stat -c %g /var/run/docker.sock) (see stacks/shoal/README.md).
USER 10001:10001
EXPOSE 9180
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/shoal", "healthcheck"]
# SIGTERM makes the agent release its lease and exit within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/shoal"]
CMD ["agent", "--help"]

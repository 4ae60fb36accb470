#!/usr/bin/env bash
# Installs the Debian 12 packages strata needs to build, test and run, only when one is missing:
# 'apt-get update' once, then 'apt-get install -y --no-install-recommends'. Idempotent; needs root
# (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libssl-dev libzstd-dev libxxhash-dev libisal-dev libtbb-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev libcurl4-openssl-dev libgtest-dev libbenchmark-dev
  zlib1g-dev
  skopeo umoci docker-registry oci-image-tool
  zstd gzip tar python3 time sqlite3 curl
  tar-split
  clang-tidy
  pybind11-dev python3-pybind11 python3-pytest python3-dev golang-go
)
if [ "${STRATA_EXTRA_PACKAGES:-}" != "" ]; then
  read -r -a extra <<<"$STRATA_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

# A Debian machine has /dev/null; some sandboxes start without it, and Go's os/exec (the Go
# binding's test) and the shell redirections below need it. Make the real device when it is
# missing, an empty file where mknod is refused.
if [ ! -e /dev/null ]; then
  mknod -m 666 /dev/null c 1 3 2>&1 || : >/dev/null
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"

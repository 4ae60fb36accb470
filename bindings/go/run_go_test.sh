#!/usr/bin/env bash
# Runs the Go package's `go test` (called by ctest with the Go environment already set).
# Go's os/exec opens /dev/null for every child whose stdin or stdout is unset, and cmd/go starts
# gcc, compile, link and vet that way, so a machine without /dev/null (some sandboxes start with
# none) fails the build with "open /dev/null: no such file or directory". When it is missing this
# makes the real device (mknod c 1 3) or, where mknod is refused, an empty file, and says which.
set -euo pipefail
if [[ ! -e /dev/null ]]; then
  if mknod_error=$(mknod -m 666 /dev/null c 1 3 2>&1); then
    echo "run_go_test: /dev/null was missing; made the character device 1,3"
  elif : >/dev/null; then
    echo "run_go_test: /dev/null was missing and mknod was refused ($mknod_error); made an empty file"
  else
    echo "run_go_test: /dev/null is missing and cannot be made; go cannot start gcc without it" >&2
    exit 1
  fi
fi
exec "$@"

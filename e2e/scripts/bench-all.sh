#!/usr/bin/env bash
# Runs every benchmark, one after another (they share the machine's cores, so never two at once), and
# writes their results as one table into docs/bench-results.md: each row a metric of Ephemera's
# beside the baseline the same bench measured in the same run, with the machine it ran on.
#
#   e2e/scripts/bench-all.sh                 # every bench
#   e2e/scripts/bench-all.sh stream create   # only the benches named (see BENCHES below)
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$REPO"

# name, package, bench target
BENCHES=(
  "api ephemera-devcluster api"
  "pods ephemera-devcluster pods"
  "reconcile ephemera-operator reconcile"
  "schedules ephemera-operator schedules"
  "credentials ephemera-e2e credentials"
  "progress_flood ephemera-e2e progress_flood"
  "create ephemera-api create"
  "webhooks ephemera-api webhooks"
  "stream ephemera-api stream"
)
wanted=("$@")
selected=()
for b in "${BENCHES[@]}"; do
  name=${b%% *}
  if [[ ${#wanted[@]} -eq 0 ]] || [[ " ${wanted[*]} " == *" $name "* ]]; then selected+=("$b"); fi
done
if [[ ${#selected[@]} -eq 0 ]]; then
  echo "no bench named ${wanted[*]}; the benches are: $(for b in "${BENCHES[@]}"; do printf '%s ' "${b%% *}"; done)" >&2
  exit 2
fi

need_kubectl
need_crd_apiserver
need_openbao
need_command runc runc
export EPHEMERA_CRD_APISERVER_DIR="$CRD_APISERVER_DIR" BAO
port=$REGISTRY_PORT
if ! curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
  trap '"$REPO/e2e/scripts/registry.sh" stop' EXIT
fi
"$REPO/e2e/scripts/registry.sh" start
echo "== test images and the worker image (the benches' Pods pull them from the loopback registry)" >&2
"$REPO/images/test/build.sh" >/dev/null
export EPHEMERA_TEST_REGISTRY="127.0.0.1:$port"
"$REPO/images/build.sh" --profile dev --component worker --tag test --registry "127.0.0.1:$port/ephemera-dev" \
  --env-file "$REPO/target/images/test-images.env" >/dev/null
echo "== API server binary (the stream bench runs it as its own process)" >&2
cargo build --release --locked -p ephemera-api --bin ephemera-api

out="$REPO/target/bench-all"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
export EPHEMERA_BENCH_RESULTS="$results"
timings="$out/timings.tsv"
: >"$timings"
for b in "${selected[@]}"; do
  read -r name package target <<<"$b"
  echo "== bench $name (cargo bench -p $package --bench $target)" >&2
  start=$(date +%s)
  status=0
  cargo bench --locked -p "$package" --bench "$target" 2>&1 | tee "$out/$name.log" || status=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$package" "$target" "$(($(date +%s) - start))s, exit $status" >>"$timings"
done

commit=$(git rev-parse --short HEAD)
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then commit="$commit (with uncommitted changes)"; fi
python3 - "$results" "$timings" "$REPO/docs/bench-results.md" "$commit" <<'EOF'
import json, os, platform, sys, time
results, timings, target, commit = sys.argv[1:5]
rows = [json.loads(l) for l in open(results) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
def num(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
out = [
    "# Benchmark results",
    "",
    "Written by `e2e/scripts/bench-all.sh` (do not edit by hand); what each bench does and the",
    "findings behind the numbers are in [benchmarks.md](benchmarks.md).",
    "",
    f"- when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}",
    f"- machine: {os.cpu_count()} cores ({cpu}), {mem} GiB memory, {platform.system()} {platform.release()}",
    "- ratio: Ephemera / baseline, both measured by the same bench in the same run",
    "",
    "| bench | metric | Ephemera | baseline | ratio |",
    "| --- | --- | ---: | ---: | ---: |",
]
for r in rows:
    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
    out.append(f"| {r['bench']} | {r['metric']} | {num(r['ours'])} | {num(r.get('baseline'))} | {ratio} |")
out += ["", "| bench | command | took |", "| --- | --- | --- |"]
for l in open(timings):
    name, package, bench, took = l.rstrip("\n").split("\t")
    out.append(f"| {name} | `cargo bench -p {package} --bench {bench}` | {took} |")
open(target, "w").write("\n".join(out) + "\n")
print(f"wrote {target}: {len(rows)} results")
EOF

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
  "sustained ephemera-e2e sustained"
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
echo "== the workspace's binaries (the stream and sustained benches run the API server and the operator as their own processes)" >&2
cargo build --release --locked --workspace --bins

# Each bench's results are kept apart, in the repository (docs/bench-results/NAME.jsonl), so a run of
# some benches, on any clone, updates their rows and keeps the others' from earlier runs, each with
# its own commit and date. Full logs go to target/bench-all/NAME.log.
out="$REPO/docs/bench-results"
logs="$REPO/target/bench-all"
mkdir -p "$out" "$logs"
commit=$(git rev-parse --short HEAD)
# Its own results, and docs, are not changes to what is measured.
if [[ -n "$(git status --porcelain --untracked-files=no -- . ':!docs')" ]]; then
  commit="$commit+changes"
fi
for b in "${selected[@]}"; do
  read -r name package target <<<"$b"
  echo "== bench $name (cargo bench -p $package --bench $target)" >&2
  export EPHEMERA_BENCH_RESULTS="$logs/$name.new"
  : >"$EPHEMERA_BENCH_RESULTS"
  start=$(date +%s)
  status=0
  cargo bench --locked -p "$package" --bench "$target" 2>&1 | tee "$logs/$name.log" || status=$?
  python3 - "$EPHEMERA_BENCH_RESULTS" "$out/$name.jsonl" "$package" "$target" "$commit" "$(($(date +%s) - start))" "$status" <<'EOF'
import json, os, platform, sys, time
new, path, package, target, commit, took, status = sys.argv[1:8]
rows = [l for l in open(new) if l.strip()]
# A bench that failed before reporting anything keeps its earlier rows (its log says why).
if int(status) != 0 and not rows:
    print(f"{target} failed (exit {status}) and reported nothing: its earlier results are kept", file=sys.stderr)
    sys.exit(0)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
meta = {"command": f"cargo bench -p {package} --bench {target}", "commit": commit,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "took_s": int(took), "exit": int(status),
        "machine": f"{os.cpu_count()} cores ({cpu}), {mem} GiB memory, {platform.system()} {platform.release()}"}
with open(path, "w") as f:
    f.write(json.dumps({"meta": meta}) + "\n")
    f.writelines(rows)
EOF
  rm -f "$EPHEMERA_BENCH_RESULTS"
done

order=$(for b in "${BENCHES[@]}"; do printf '%s ' "${b%% *}"; done)
# shellcheck disable=SC2086 # one argument per bench name
python3 - "$out" "$REPO/docs/bench-results.md" $order <<'EOF'
import json, os, sys
out, target, order = sys.argv[1], sys.argv[2], sys.argv[3:]
def num(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
table, runs, machines = [], [], []
for name in order:
    path = os.path.join(out, name + ".jsonl")
    if not os.path.exists(path):
        continue
    lines = [json.loads(l) for l in open(path) if l.strip()]
    meta = lines[0]["meta"]
    machine = meta.get("machine", "not recorded")
    if machine not in machines:
        machines.append(machine)
    runs.append(f"| {name} | `{meta['command']}` | {meta['commit']} | {meta['when']} | {meta['took_s']} s | {meta['exit']} | {machines.index(machine) + 1} |")
    for r in lines[1:]:
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
        table.append(f"| {r['bench']} | {r['metric']} | {num(r['ours'])} | {num(r.get('baseline'))} | {ratio} |")
doc = [
    "# Benchmark results",
    "",
    "Written by `e2e/scripts/bench-all.sh` (do not edit by hand); what each bench does, and the",
    "findings behind the numbers, are in [benchmarks.md](benchmarks.md).",
    "",
    "- ratio: Ephemera / baseline, both measured by the same bench in the same run (so on the same machine)",
    *[f"- machine {i + 1}: {m}" for i, m in enumerate(machines)],
    "",
    "| bench | metric | Ephemera | baseline | ratio |",
    "| --- | --- | ---: | ---: | ---: |",
    *table,
    "",
    "| bench | command | commit | when | took | exit | machine |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    *runs,
]
open(target, "w").write("\n".join(doc) + "\n")
print(f"wrote {target}: {len(table)} results from {len(runs)} benches")
EOF

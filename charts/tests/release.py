"""Installs, upgrades or uninstalls a release of the chart with Helm v4's own engine (the
helm-python-sdk binding of its Go SDK), as `helm install|upgrade|uninstall --wait` would. Used by the
dev stack (e2e/scripts/dev.sh) and the full-stack Helm test; no helm binary is needed.

    release.py install|upgrade|uninstall --kubeconfig FILE --namespace NS --name NAME
               [--values FILE.json] [--timeout SECONDS]

Waits with Helm's `watcher` strategy (kstatus: Deployments rolled out, Pods ready, Services with
their addresses). Prints one JSON line: the release's name, namespace, revision and status.
"""

import argparse
import json
import pathlib
import sys

import helm_python as helm

CHART = pathlib.Path(__file__).resolve().parent.parent / "ephemera"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["install", "upgrade", "uninstall"])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--values", help="a JSON file of values")
    p.add_argument("--timeout", type=int, default=300)
    a = p.parse_args()
    values = json.loads(pathlib.Path(a.values).read_text()) if a.values else {}
    cfg = helm.Config(kubeconfig_path=a.kubeconfig, namespace=a.namespace)
    try:
        if a.action == "install":
            rel = cfg.install(str(CHART), a.name, values, namespace=a.namespace, create_namespace=True,
                              wait="watcher", timeout=a.timeout)
        elif a.action == "upgrade":
            rel = cfg.upgrade(str(CHART), a.name, values, namespace=a.namespace, wait="watcher", timeout=a.timeout)
        else:
            rel = cfg.uninstall(a.name, wait="watcher", timeout=a.timeout)
    except helm.HelmError as e:  # the message Helm itself gives (a failed wait names the resource)
        print(f"helm {a.action} {a.name}: {e}", file=sys.stderr)
        return 1
    # A summary (install, upgrade) or {"info", "release": summary} (uninstall).
    summary = rel.get("release", rel) if isinstance(rel, dict) else {}
    info = summary.get("info") if isinstance(summary.get("info"), dict) else {}
    status = summary.get("status") or info.get("status")
    revision = summary.get("version") or summary.get("revision")
    print(json.dumps({"name": a.name, "namespace": a.namespace, "revision": revision, "status": status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

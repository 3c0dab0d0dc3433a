"""The chart, through Helm's own engine (helm-python-sdk binds Helm v4's Go SDK): lint, render the
default, HA and everything-on values, validate every object against Kubernetes 1.36's schemas
(strict: unknown fields fail), and assert the security properties the README promises.

Run: python3 -m unittest discover -s charts/tests (the test command does, in its own venv)."""

import base64
import copy
import json
import pathlib
import re
import sys
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART_DIR = REPO / "charts" / "ephemera"
KUBE_VERSION = "1.36.0"
NAMESPACE = "ephemera"
RELEASE = "eph"

sys.path.insert(0, str(HERE))
import gen_schema  # noqa: E402

# The values a production install would use: HA everywhere, the admin's certificate, OIDC, Vault,
# Salesforce mTLS, NetworkPolicies.
HA = {
    "operator": {"replicaCount": 2, "podDisruptionBudget": {"enabled": True}},
    "apiServer": {
        "replicaCount": 3,
        "oidc": {
            "issuers": [
                {
                    "issuer": "https://token.actions.githubusercontent.com",
                    "audience": "ephemera",
                    "rules": [{"match": {"repository_id": "123"}, "namespaces": ["team-a"], "verbs": ["create", "read"]}],
                }
            ]
        },
    },
    "edge": {
        "replicaCount": 3,
        "tls": {"mode": "secret", "secretName": "ephemera-tls"},
        "salesforceMtls": {"enabled": True, "caSecret": "salesforce-ca"},
    },
    "vault": {"addr": "https://vault.vault.svc:8200"},
    "networkPolicy": {"enabled": True},
}
DEFAULT = {"edge": {"tls": {"acme": {"email": "admin@example.com"}}}}


def render(values=None, **kw):
    chart = helm.Chart.load(str(CHART_DIR))
    out = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True, **kw)
    objects = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects, out


def merged(*parts):
    out = {}
    for p in parts:
        out = _merge(out, copy.deepcopy(p))
    return out


def _merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            a[k] = _merge(a[k], v)
        else:
            a[k] = v
    return a


def kinds(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def by_name(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(objects):
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in kinds(objects, "Deployment")]


class Lint(unittest.TestCase):
    def test_the_chart_lints_clean_with_default_and_ha_values(self):
        for values in (DEFAULT, merged(DEFAULT, HA)):
            report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBE_VERSION)
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(problems, [], json.dumps(report, indent=1))
            self.assertEqual(report.get("errors") or [], [])


class Schemas(unittest.TestCase):
    def test_every_rendered_object_is_valid_kubernetes_1_36(self):
        for values in (DEFAULT, merged(DEFAULT, HA), {"edge": {"enabled": False}, "crds": {"enabled": False}}):
            objects, _ = render(values)
            self.assertGreater(len(objects), 10)
            for o in objects:
                with self.subTest(kind=o["kind"], name=o["metadata"]["name"]):
                    kubernetes_validate.validate(o, KUBE_VERSION, strict=True)

    def test_the_values_schema_is_the_generated_one(self):
        have = (CHART_DIR / "values.schema.json").read_text()
        self.assertEqual(have, gen_schema.render(), "values.schema.json is stale: run python3 charts/tests/gen_schema.py")

    def test_the_defaults_satisfy_the_schema(self):
        chart = helm.Chart.load(str(CHART_DIR))
        chart.validate_schema(chart.values)

    def test_bad_values_fail_with_a_message_naming_the_key(self):
        cases = [
            ({"edge": {"tls": {"mode": "letsencrypt"}}}, "/edge/tls/mode"),
            ({"operator": {"replicaCount": "2"}}, "/operator/replicaCount"),
            ({"apiServer": {"replicas": 3}}, "replicas"),
            ({"operator": {"image": {"digest": "sha256:abc"}}}, "/operator/image/digest"),
            ({"vault": {"auth": "ldap"}}, "/vault/auth"),
            ({"apiServer": {"trustedProxies": ["not a cidr"]}}, "/apiServer/trustedProxies/0"),
            ({"apiServer": {"oidc": {"issuers": [{"issuer": "http://insecure", "audience": "a", "rules": []}]}}}, "issuer"),
            ({"edge": {"bodyLimits": {"api": "lots"}}}, "/edge/bodyLimits/api"),
            # Beyond what the API server drains of a refused body, a refusal would reset the connection.
            ({"edge": {"bodyLimits": {"webhooks": 64 * 1024 * 1024}}}, "/edge/bodyLimits/webhooks"),
        ]
        for values, where in cases:
            with self.subTest(values=values):
                with self.assertRaises(helm.HelmError) as err:
                    render(values)
                self.assertIn(where, str(err.exception))

    def test_a_required_setting_missing_for_the_chosen_mode_is_named(self):
        cases = [
            ({"edge": {"tls": {"mode": "acme"}}}, "edge.tls.acme.email is required"),
            ({"edge": {"tls": {"mode": "secret"}}}, "edge.tls.secretName is required"),
            (merged(DEFAULT, {"vault": {"addr": "https://v:8200", "auth": "approle"}}), "vault.approle.secretIdSecret is required"),
            (merged(DEFAULT, {"edge": {"salesforceMtls": {"enabled": True}}}), "edge.salesforceMtls.caSecret is required"),
        ]
        for values, message in cases:
            with self.subTest(values=values):
                with self.assertRaises(helm.HelmError) as err:
                    render(values)
                self.assertIn(message, str(err.exception))


class Security(unittest.TestCase):
    def setUp(self):
        self.default, _ = render(DEFAULT)
        self.ha, _ = render(merged(DEFAULT, HA))

    def test_every_pod_runs_under_the_restricted_profile_with_a_read_only_root(self):
        for objects in (self.default, self.ha):
            for name, spec in pod_specs(objects):
                with self.subTest(deployment=name):
                    psc = spec["securityContext"]
                    self.assertTrue(psc["runAsNonRoot"])
                    self.assertNotEqual(psc.get("runAsUser"), 0)
                    self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
                    for key in ("hostNetwork", "hostPID", "hostIPC"):
                        self.assertFalse(spec.get(key, False))
                    for v in spec.get("volumes", []):
                        self.assertNotIn("hostPath", v)
                    for c in spec["containers"] + spec.get("initContainers", []):
                        sc = c["securityContext"]
                        self.assertIs(sc["readOnlyRootFilesystem"], True)
                        self.assertIs(sc["allowPrivilegeEscalation"], False)
                        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                        self.assertNotIn("add", sc["capabilities"])
                        self.assertFalse(sc.get("privileged", False))
                        self.assertIn("cpu", c["resources"]["requests"])
                        self.assertIn("memory", c["resources"]["requests"])
                        self.assertIn("memory", c["resources"]["limits"])

    def test_probes_watch_healthz_and_readyz(self):
        for name, spec in pod_specs(self.default):
            c = spec["containers"][0]
            with self.subTest(deployment=name):
                self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
                want = "/healthz" if name.endswith("-edge") else "/readyz"
                self.assertEqual(c["readinessProbe"]["httpGet"]["path"], want)
                self.assertIn("startupProbe", c)

    def test_no_pod_gets_an_automounted_token_and_only_the_daemons_that_call_the_api_get_one(self):
        for sa in kinds(self.default, "ServiceAccount"):
            self.assertIs(sa["automountServiceAccountToken"], False, sa["metadata"]["name"])
        for name, spec in pod_specs(self.default):
            self.assertIs(spec["automountServiceAccountToken"], False, name)
            projected = [v for v in spec.get("volumes", []) if "projected" in v]
            tokens = [s for v in projected for s in v["projected"]["sources"] if "serviceAccountToken" in s]
            if name.endswith("-edge"):
                self.assertEqual(tokens, [], "the edge never calls the Kubernetes API")
            else:
                self.assertEqual(len(tokens), 1, name)

    def test_the_operator_logs_in_to_vault_with_a_token_of_vaults_audience(self):
        spec = dict(pod_specs(self.ha))[f"{RELEASE}-ephemera-operator"]
        vault = [v for v in spec["volumes"] if v["name"] == "vault-identity"][0]
        self.assertEqual(vault["projected"]["sources"][0]["serviceAccountToken"]["audience"], "vault")

    def test_ha_values_spread_replicas_and_keep_them_through_drains(self):
        pdbs = {p["metadata"]["name"] for p in kinds(self.ha, "PodDisruptionBudget")}
        for name, spec in pod_specs(self.ha):
            with self.subTest(deployment=name):
                self.assertIn(name, pdbs)
                terms = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                self.assertEqual(terms[0]["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")
        # One operator replica: a PodDisruptionBudget would block every node drain.
        self.assertNotIn(f"{RELEASE}-ephemera-operator", {p["metadata"]["name"] for p in kinds(self.default, "PodDisruptionBudget")})

    def test_images_may_be_pinned_by_digest(self):
        digest = "sha256:" + "a" * 64
        objects, _ = render(merged(DEFAULT, {"operator": {"image": {"digest": digest}, "workerImage": {"digest": digest}}}))
        spec = dict(pod_specs(objects))[f"{RELEASE}-ephemera-operator"]
        self.assertEqual(spec["containers"][0]["image"], f"ghcr.io/ephemera-dev/ephemera-operator@{digest}")
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        self.assertEqual(env["EPHEMERA_WORKER_IMAGE"], f"ghcr.io/ephemera-dev/ephemera-worker@{digest}")
        api = dict(pod_specs(objects))[f"{RELEASE}-ephemera-api"]
        self.assertEqual(api["containers"][0]["image"], "ghcr.io/ephemera-dev/ephemera-api:0.1.0")

    def test_the_hmac_key_is_random_and_long_enough(self):
        keys = set()
        for _ in range(2):
            objects, _ = render(DEFAULT)
            secret = by_name(objects, "Secret", f"{RELEASE}-ephemera-hmac")
            key = base64.b64decode(secret["data"]["key"])
            self.assertGreaterEqual(len(key), 32)
            keys.add(key)
        self.assertEqual(len(keys), 2, "each fresh install gets its own key")
        objects, _ = render(merged(DEFAULT, {"hmacKey": {"existingSecret": "mine"}}))
        self.assertEqual(kinds(objects, "Secret"), [])
        spec = dict(pod_specs(objects))[f"{RELEASE}-ephemera-api"]
        self.assertEqual([v for v in spec["volumes"] if v["name"] == "hmac"][0]["secret"]["secretName"], "mine")

    def test_network_policies_are_off_by_default_and_cover_every_component_when_on(self):
        self.assertEqual(kinds(self.default, "NetworkPolicy"), [])
        policies = kinds(self.ha, "NetworkPolicy")
        selected = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in policies}
        self.assertEqual(selected, {"operator", "api", "edge"})
        for p in policies:
            self.assertEqual(sorted(p["spec"]["policyTypes"]), ["Egress", "Ingress"])


class Rbac(unittest.TestCase):
    def setUp(self):
        self.objects, _ = render(merged(DEFAULT, HA))

    def rules(self, component):
        sa = f"{RELEASE}-ephemera-{component}"
        out = []
        for kind, binding_kind in (("ClusterRole", "ClusterRoleBinding"), ("Role", "RoleBinding")):
            for b in kinds(self.objects, binding_kind):
                if any(s["name"] == sa and s["namespace"] == NAMESPACE for s in b["subjects"]):
                    role = by_name(self.objects, b["roleRef"]["kind"], b["roleRef"]["name"])
                    for r in role["rules"]:
                        out.append((kind, b["metadata"].get("namespace"), r))
        return out

    def test_no_rule_uses_a_wildcard(self):
        for role in kinds(self.objects, "ClusterRole") + kinds(self.objects, "Role"):
            for r in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    self.assertNotIn("*", r.get(key, []), role["metadata"]["name"])
                self.assertNotIn("escalate", r["verbs"])
                self.assertNotIn("bind", r["verbs"])
                self.assertNotIn("impersonate", r["verbs"])

    def test_secrets_are_listed_and_changed_only_in_the_release_namespace(self):
        # Cluster-wide, Secrets are only read or made by a name the code knows (a trigger's signing
        # Secret; an attempt's reporting Secret), never listed, watched or updated.
        for component in ("operator", "api"):
            for kind, ns, r in self.rules(component):
                if "secrets" in r["resources"] and kind == "ClusterRole":
                    with self.subTest(component=component, rule=r):
                        self.assertFalse(set(r["verbs"]) & {"list", "watch", "update", "patch", "deletecollection"})

    def test_the_api_server_cannot_write_pods_or_secrets(self):
        for kind, ns, r in self.rules("api"):
            if set(r["resources"]) & {"pods", "secrets"}:
                self.assertFalse(set(r["verbs"]) & {"create", "update", "patch", "delete", "deletecollection"}, r)

    def test_the_edge_has_no_kubernetes_rights(self):
        self.assertEqual(self.rules("edge"), [])


class Contents(unittest.TestCase):
    def test_the_crds_are_the_generated_ones_and_kept_on_uninstall(self):
        objects, _ = render(DEFAULT)
        crds = {c["metadata"]["name"]: c for c in kinds(objects, "CustomResourceDefinition")}
        for path in sorted((REPO / "crds" / "yaml").glob("*.yaml")):
            want = yaml.safe_load(path.read_text())
            have = crds[want["metadata"]["name"]]
            self.assertEqual(have["spec"], want["spec"], path.name)
            self.assertEqual(have["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
            self.assertEqual(
                path.read_text(), (CHART_DIR / "files" / "crds" / path.name).read_text(),
                f"charts/ephemera/files/crds/{path.name} is stale: run `cargo run -p ephemera-crds --bin crdgen`",
            )
        self.assertEqual(len(crds), len(list((REPO / "crds" / "yaml").glob("*.yaml"))))
        objects, _ = render(merged(DEFAULT, {"crds": {"keep": False}}))
        for c in kinds(objects, "CustomResourceDefinition"):
            self.assertNotIn("helm.sh/resource-policy", c["metadata"].get("annotations") or {})
        objects, _ = render(merged(DEFAULT, {"crds": {"enabled": False}}))
        self.assertEqual(kinds(objects, "CustomResourceDefinition"), [])

    def test_the_salesforce_catalogue_is_off_by_default_and_installs_the_files_in_the_chosen_image(self):
        objects, _ = render(DEFAULT)
        self.assertEqual(kinds(objects, "ClusterTaskTemplate"), [])
        image = "registry.example/sf@sha256:" + "a" * 64
        objects, _ = render(merged(DEFAULT, {"catalogue": {"salesforce": {"enabled": True, "image": image}}}))
        templates = {t["metadata"]["name"]: t for t in kinds(objects, "ClusterTaskTemplate")}
        files = sorted((CHART_DIR / "files" / "catalogue").glob("salesforce-*.yaml"))
        self.assertEqual(sorted(templates), sorted(p.stem for p in files))
        for path in files:
            want = yaml.safe_load(path.read_text())
            have = templates[want["metadata"]["name"]]
            self.assertEqual(have["spec"]["task"]["image"], image)
            want["spec"]["task"]["image"] = image
            self.assertEqual(have["spec"], want["spec"], path.name)
            self.assertEqual(have["metadata"]["labels"]["app.kubernetes.io/instance"], RELEASE)

    def test_the_admission_policy_is_the_repositorys_with_this_releases_service_account(self):
        objects, _ = render(DEFAULT)
        policy = kinds(objects, "ValidatingAdmissionPolicy")[0]
        want = list(yaml.safe_load_all((REPO / "crds" / "policies" / "task-origin.yaml").read_text()))[0]
        self.assertEqual(policy["spec"]["validations"], want["spec"]["validations"])
        self.assertEqual(policy["spec"]["matchConstraints"], want["spec"]["matchConstraints"])
        self.assertEqual(
            policy["spec"]["matchConditions"][0]["expression"],
            f"request.userInfo.username != 'system:serviceaccount:{NAMESPACE}:{RELEASE}-ephemera-api'",
        )
        self.assertEqual(
            policy["spec"]["matchConditions"][1]["expression"],
            f"request.userInfo.username != 'system:serviceaccount:{NAMESPACE}:{RELEASE}-ephemera-operator'",
        )
        binding = kinds(objects, "ValidatingAdmissionPolicyBinding")[0]
        self.assertEqual(binding["spec"]["policyName"], policy["metadata"]["name"])

    def test_the_edge_runs_the_repositorys_caddyfile(self):
        self.assertEqual((REPO / "Caddyfile").read_text(), (CHART_DIR / "files" / "Caddyfile").read_text(), "copy the top-level Caddyfile into charts/ephemera/files/")
        objects, _ = render(DEFAULT)
        config = by_name(objects, "ConfigMap", f"{RELEASE}-ephemera-edge")
        self.assertEqual(config["data"]["Caddyfile"].strip(), (REPO / "Caddyfile").read_text().strip())

    def test_the_edge_finds_the_ready_api_replicas_by_the_headless_service(self):
        objects, _ = render(DEFAULT)
        headless = by_name(objects, "Service", f"{RELEASE}-ephemera-api-replicas")
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        spec = dict(pod_specs(objects))[f"{RELEASE}-ephemera-edge"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        self.assertEqual(env["EPHEMERA_EDGE_UPSTREAMS"], "dns")
        self.assertEqual(env["EPHEMERA_API_DNS"], f"{RELEASE}-ephemera-api-replicas.{NAMESPACE}.svc")
        self.assertEqual(env["EPHEMERA_EDGE_TLS"], "admin@example.com")
        api = dict(pod_specs(objects))[f"{RELEASE}-ephemera-api"]
        api_env = {e["name"]: e.get("value") for e in api["containers"][0]["env"]}
        self.assertIn("10.0.0.0/8", api_env["EPHEMERA_API_TRUSTED_PROXIES"])
        # Without the edge nothing is trusted unless the admin says so.
        objects, _ = render({"edge": {"enabled": False}})
        api = dict(pod_specs(objects))[f"{RELEASE}-ephemera-api"]
        self.assertNotIn("EPHEMERA_API_TRUSTED_PROXIES", {e["name"] for e in api["containers"][0]["env"]})

    def test_workers_reach_the_api_and_the_hand_off_by_service_names(self):
        objects, _ = render(DEFAULT)
        spec = dict(pod_specs(objects))[f"{RELEASE}-ephemera-operator"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        self.assertEqual(env["EPHEMERA_PROGRESS_URL"], f"http://{RELEASE}-ephemera-api.{NAMESPACE}.svc:8080")
        self.assertEqual(env["EPHEMERA_HANDOFF_URL"], f"http://{RELEASE}-ephemera-operator.{NAMESPACE}.svc:8082")
        by_name(objects, "Service", f"{RELEASE}-ephemera-operator")

    def test_container_ports_and_strategies_follow_the_values_and_services_keep_their_ports(self):
        values = merged(DEFAULT, {
            "operator": {"containerPorts": {"metrics": 18080, "handoff": 18082}, "strategy": {"type": "Recreate"}},
            "apiServer": {"containerPorts": {"http": 18090, "metrics": 18091}},
            "edge": {"containerPorts": {"https": 18443, "http": 18081, "metrics": 18180}},
        })
        objects, _ = render(values)
        specs = dict(pod_specs(objects))
        for component, listen in [
            ("operator", {"EPHEMERA_METRICS_ADDR": "0.0.0.0:18080", "EPHEMERA_HANDOFF_ADDR": "0.0.0.0:18082"}),
            ("api", {"EPHEMERA_API_LISTEN": "0.0.0.0:18090", "EPHEMERA_API_METRICS_LISTEN": "0.0.0.0:18091"}),
            ("edge", {"EPHEMERA_EDGE_HTTPS_PORT": "18443", "EPHEMERA_EDGE_HTTP_PORT": "18081", "EPHEMERA_API_PORT": "18090"}),
        ]:
            c = specs[f"{RELEASE}-ephemera-{component}"]["containers"][0]
            env = {e["name"]: e.get("value") for e in c["env"]}
            for k, v in listen.items():
                self.assertEqual(env[k], v, f"{component} {k}")
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            # Every probe names a port the container declares.
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                self.assertIn(c[probe]["httpGet"]["port"], ports, f"{component} {probe}")
        deployments = {d["metadata"]["name"]: d for d in kinds(objects, "Deployment")}
        self.assertEqual(deployments[f"{RELEASE}-ephemera-operator"]["spec"]["strategy"], {"type": "Recreate"})
        self.assertEqual(deployments[f"{RELEASE}-ephemera-api"]["spec"]["strategy"]["rollingUpdate"], {"maxUnavailable": 0, "maxSurge": 1})
        # Service ports are what clients use; they do not move with the containers.
        api = by_name(objects, "Service", f"{RELEASE}-ephemera-api")
        self.assertEqual([(p["port"], p["targetPort"]) for p in api["spec"]["ports"]], [(8080, "http"), (9090, "metrics")])

    def test_notes_tell_the_admin_what_to_do_next(self):
        _, out = render({"edge": {"tls": {"mode": "internal"}}})
        notes = out["ephemera/templates/NOTES.txt"]
        self.assertIn("kubectl get pods -n ephemera", notes)
        self.assertIn("internal CA", notes)
        self.assertIn("ephemera-api token create", notes)
        self.assertIn("Vault is not configured", notes)

    def test_names_stay_within_kubernetes_limits_for_long_release_names(self):
        chart = helm.Chart.load(str(CHART_DIR))
        out = chart.render(merged(DEFAULT, HA), name="a" * 53, namespace=NAMESPACE, is_install=True)
        for path, text in out.items():
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and "metadata" in doc:
                    self.assertLessEqual(len(doc["metadata"]["name"]), 63, doc["metadata"]["name"])
                    self.assertTrue(re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", doc["metadata"]["name"]))


if __name__ == "__main__":
    unittest.main()

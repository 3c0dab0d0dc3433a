"""The local cluster driven by the official Python client (`kubernetes` on PyPI), the way its own
examples use it: typed models without `kind`/`apiVersion`, dict patches, watches, logs, deletes
with DeleteOptions bodies, and the errors it raises. Run by python_client.rs with a kubeconfig;
the gadget CRD (tests/cluster/common) is installed. Prints one line per step; exits non-zero on
the first surprise."""

import base64
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
NS = "py"


def step(name):
    print(f"ok {name}", flush=True)


def expect_error(status, reason, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        body = e.body.decode() if isinstance(e.body, bytes) else e.body
        assert f'"reason":"{reason}"' in body.replace(" ", ""), body
        return body
    raise AssertionError(f"expected {status} {reason}")


# Built-in kinds: the models leave kind and apiVersion unset; the server takes them from the URL.
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
step("namespace without kind")
cm = core.create_namespaced_config_map(
    NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"a": "1"})
)
assert cm.kind == "ConfigMap" and cm.api_version == "v1", (cm.kind, cm.api_version)
assert cm.metadata.uid and cm.metadata.resource_version
step("configmap without kind, answered with kind")
expect_error(
    409,
    "AlreadyExists",
    core.create_namespaced_config_map,
    NS,
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings")),
)
step("duplicate create is 409 AlreadyExists")

# A dict patch: the client sends it as a strategic merge patch.
patched = core.patch_namespaced_config_map("settings", NS, {"data": {"b": "2"}})
assert patched.data == {"a": "1", "b": "2"}, patched.data
step("dict patch")

# Replace with the object read back (resourceVersion kept), and with a stale one (409 Conflict).
current = core.read_namespaced_config_map("settings", NS)
current.data["c"] = "3"
replaced = core.replace_namespaced_config_map("settings", NS, current)
assert replaced.data["c"] == "3"
stale = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="settings", resource_version=current.metadata.resource_version), data={}
)
expect_error(409, "Conflict", core.replace_namespaced_config_map, "settings", NS, stale)
step("replace, and a stale replace is 409 Conflict")

listed = core.list_namespaced_config_map(NS, label_selector="app=py")
assert [i.metadata.name for i in listed.items] == ["settings"], listed.items
assert listed.metadata.resource_version
step("list with a label selector")

secret = core.create_namespaced_secret(
    NS, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"token": "s3cr3t"}, type="Opaque")
)
assert base64.b64decode(secret.data["token"]) == b"s3cr3t"
assert secret.string_data is None
step("secret stringData becomes data")

# A list body is sent as a JSON patch.
patched = core.patch_namespaced_config_map("settings", NS, [{"op": "add", "path": "/data/d", "value": "4"}])
assert patched.data["d"] == "4", patched.data
step("list patch is a JSON patch")

# A watch from a list's resourceVersion sees the next change and nothing before it. Both select the
# test's own objects: the cluster puts kube-root-ca.crt into a new namespace whenever it gets to it.
rv = core.list_namespaced_config_map(NS, label_selector="app=py").metadata.resource_version
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="later", labels={"app": "py"})))
seen = []
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, NS, label_selector="app=py", resource_version=rv, timeout_seconds=10):
    seen.append((event["type"], event["object"].metadata.name))
    w.stop()
assert seen == [("ADDED", "later")], seen
step("watch from a resourceVersion")

core.delete_collection_namespaced_config_map(NS, label_selector="app=py")
left = [i.metadata.name for i in core.list_namespaced_config_map(NS).items]
assert "settings" not in left and "later" not in left, left
core.create_namespaced_config_map(
    NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"a": "1"})
)
step("delete collection by label")

# A subresource body without kind: a TokenRequest for a ServiceAccount.
core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot")))
token = core.create_namespaced_service_account_token(
    "robot", NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=["api"], expiration_seconds=600))
)
assert token.status.token and token.status.expiration_timestamp, token.status
step("token request without kind")

# Core events, as controllers written with this client record them.
core.create_namespaced_event(
    NS,
    client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="settings.1"),
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="settings", namespace=NS),
        reason="Tested",
        message="from python",
        type="Normal",
    ),
)
events = core.list_namespaced_event(NS, field_selector="involvedObject.name=settings")
assert [e.reason for e in events.items] == ["Tested"], events.items
step("core event without kind, found by field selector")

expect_error(404, "NotFound", core.read_namespaced_config_map, "absent", NS)
step("missing object is 404 NotFound")
body = expect_error(
    422,
    "Invalid",
    core.create_namespaced_config_map,
    NS,
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_Name")),
)
step("invalid name is 422 Invalid")

# A Pod, watched to its end, its log read, deleted with a DeleteOptions body.
pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="hello"),
    spec=client.V1PodSpec(
        restart_policy="Never",
        containers=[client.V1Container(name="main", image="busybox", command=["sh", "-c", "echo hello from python"])],
    ),
)
core.create_namespaced_pod(NS, pod)
phase = None
w = watch.Watch()
for event in w.stream(core.list_namespaced_pod, NS, field_selector="metadata.name=hello", timeout_seconds=60):
    phase = event["object"].status.phase
    if phase in ("Succeeded", "Failed"):
        w.stop()
assert phase == "Succeeded", phase
step("pod watched to Succeeded")
log = core.read_namespaced_pod_log("hello", NS, container="main")
assert log == "hello from python\n", repr(log)
step("pod log")
core.delete_namespaced_pod("hello", NS, body=client.V1DeleteOptions(grace_period_seconds=0))
step("delete with a DeleteOptions body")

lease = client.CoordinationV1Api().create_namespaced_lease(
    NS,
    client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(holder_identity="me")),
)
assert lease.kind == "Lease" and lease.api_version == "coordination.k8s.io/v1"
step("lease (a grouped built-in) without kind")

# Custom resources are not defaulted from the URL: kube-apiserver refuses them too.
custom = client.CustomObjectsApi()
body = expect_error(
    400,
    "BadRequest",
    custom.create_namespaced_custom_object,
    "test.ephemera.dev",
    "v1",
    NS,
    "gadgets",
    {"metadata": {"name": "g1"}, "spec": {"size": 1}},
)
assert "Object 'Kind' is missing" in body, body
made = custom.create_namespaced_custom_object(
    "test.ephemera.dev",
    "v1",
    NS,
    "gadgets",
    {"apiVersion": "test.ephemera.dev/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}},
)
assert made["spec"]["size"] == 1
step("custom resource needs its kind")

core.delete_namespace(NS)
step("namespace deleted")

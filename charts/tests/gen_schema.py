"""Writes charts/ephemera/values.schema.json from the compact description below (run it after
changing values.yaml; test_chart.py fails while the checked-in schema differs from its output)."""

import json
import pathlib
import sys

CHART = pathlib.Path(__file__).resolve().parent.parent / "ephemera"


def obj(props, required=()):
    """A closed object: a misspelt key is an error, not silently ignored."""
    out = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = list(required)
    return out


def s(desc, **kw):
    return {"type": "string", "description": desc, **kw}


def i(desc, minimum=None, maximum=None):
    out = {"type": "integer", "description": desc}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def b(desc):
    return {"type": "boolean", "description": desc}


def free(desc, kind="object"):
    return {"type": kind, "description": desc}


DIGEST = {"type": "string", "pattern": r"^(sha256:[a-f0-9]{64})?$", "description": "Image digest (sha256:<64 hex>)"}
TAG = {"type": "string", "pattern": r"^([\w][\w.-]{0,127})?$", "description": "Image tag"}
QUANTITY_LIST = {"type": "string", "pattern": r"^([a-z-]+=[0-9.]+[a-zA-Z]*)(,[a-z-]+=[0-9.]+[a-zA-Z]*)*$"}
CIDR = {"type": "string", "pattern": r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"}
DNS_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "maxLength": 253}
SECRET_NAME = {"type": "string", "pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$", "maxLength": 253}


INT_OR_PERCENT = {"type": ["integer", "string"], "pattern": r"^[0-9]+%?$"}
STRATEGY = {
    **obj(
        {
            "type": {"type": "string", "enum": ["RollingUpdate", "Recreate"]},
            "rollingUpdate": obj({"maxSurge": INT_OR_PERCENT, "maxUnavailable": INT_OR_PERCENT}),
        },
        required=["type"],
    ),
    "description": "The Deployment's update strategy",
}


def ports(*names):
    return obj({n: i(f"Container port ({n})", 1, 65535) for n in names}, required=names)


def image():
    return obj({"repository": s("Image repository"), "tag": TAG, "digest": DIGEST})


def pdb():
    return obj({"enabled": b("Create a PodDisruptionBudget"), "maxUnavailable": {"type": ["integer", "string"]}})


def scheduling():
    return {
        "podAnnotations": free("Pod annotations"),
        "podLabels": free("Pod labels"),
        "nodeSelector": free("Node selector"),
        "tolerations": free("Tolerations", "array"),
        "affinity": free("Affinity"),
        "topologySpreadConstraints": free("Topology spread constraints", "array"),
        "priorityClassName": s("Priority class"),
        "podDisruptionBudget": pdb(),
        "strategy": STRATEGY,
        "resources": free("Container resources"),
        "extraEnv": free("Extra environment variables", "array"),
    }


LOG = {"type": "string", "enum": ["json", "text"]}
ISSUER = obj(
    {
        "issuer": s("Issuer URL (https only)", pattern=r"^https://"),
        "audience": s("Audience the tokens must carry", minLength=1),
        "caFile": s("PEM bundle to verify the issuer with"),
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": obj(
                {
                    "match": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
                    "namespaces": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "verbs": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["create", "read", "cancel", "delete"]}},
                },
                required=["match", "namespaces", "verbs"],
            ),
        },
    },
    required=["issuer", "audience", "rules"],
)

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Values of the Ephemera chart",
    **obj(
        {
            "nameOverride": s("Override the chart name", maxLength=40),
            "fullnameOverride": s("Override the name prefix", maxLength=46),
            "image": obj(
                {
                    "registry": s("Registry and path of the Ephemera images", minLength=1),
                    "tag": TAG,
                    "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
                }
            ),
            "imagePullSecrets": {"type": "array", "items": SECRET_NAME},
            "crds": obj({"enabled": b("Install and upgrade the CRDs"), "keep": b("Keep the CRDs on uninstall")}),
            "catalogue": obj(
                {
                    "salesforce": obj(
                        {
                            "enabled": b("Install the Salesforce DevOps ClusterTaskTemplates"),
                            "image": s("The image with the Salesforce CLI", minLength=1, maxLength=512, pattern=r"^[!-~]+$"),
                        }
                    )
                }
            ),
            "admissionPolicy": obj({"enabled": b("Install the spec.origin admission policy")}),
            "hmacKey": obj({"existingSecret": SECRET_NAME}),
            "vault": obj(
                {
                    "addr": s("Vault address", pattern=r"^(https?://[^/\s]+/?)?$"),
                    "workerAddr": s("Vault address for workers", pattern=r"^(https?://[^/\s]+/?)?$"),
                    "auth": {"type": "string", "enum": ["kubernetes", "approle", "token"]},
                    "authMount": s("Auth mount path"),
                    "role": s("Kubernetes auth role", minLength=1),
                    "audience": s("Audience of the operator's Vault login token", minLength=1),
                    "approle": obj({"roleId": s("AppRole role id"), "secretIdSecret": SECRET_NAME}),
                    "tokenSecret": SECRET_NAME,
                    "tokenRole": s("Token role", minLength=1),
                    "policyPrefix": s("Per-Credential policy prefix", minLength=1),
                    "policies": {"type": "string", "enum": ["managed", "external"]},
                    "wrapTTLSeconds": i("Wrapping token TTL", 5, 3600),
                    "allowKvPrivateKeys": b("Allow private keys in KV"),
                }
            ),
            "operator": obj(
                {
                    "replicaCount": i("Replicas", 1, 10),
                    "image": image(),
                    "workerImage": image(),
                    "defaultTaskImage": s("Image of Tasks that name none"),
                    "podStartTimeoutSeconds": i("Pod start timeout", 10, 86400),
                    "terminationGraceSeconds": i("Worker Pod grace period", 0, 3600),
                    "workerUid": i("Worker UID/GID", 1, 2147483647),
                    "workerDefaultRequests": QUANTITY_LIST,
                    "workerDefaultLimits": QUANTITY_LIST,
                    "normalEvents": b("Also record Normal Events retelling each Task's phase changes"),
                    "maxConcurrentReconciles": i("Task reconciles in flight at once", 1, 1024),
                    "workerProxy": s("Egress proxy URL"),
                    "workerNoProxy": s("NO_PROXY list"),
                    "leaseSeconds": i("Lease duration", 3, 300),
                    "containerPorts": ports("metrics", "handoff"),
                    "logFormat": LOG,
                    "serviceAccount": obj({"annotations": free("ServiceAccount annotations")}),
                    **scheduling(),
                }
            ),
            "apiServer": obj(
                {
                    "replicaCount": i("Replicas", 1, 100),
                    "image": image(),
                    "rateBurst": i("Rate limit burst", 1),
                    "ratePerSecond": {"type": "number", "exclusiveMinimum": 0},
                    "requestTimeoutSeconds": i("Request timeout", 1, 3600),
                    "streamConnections": i("Live connections per identity", 1),
                    "drainSeconds": i("Drain on SIGTERM", 0, 3600),
                    "trustedProxies": {"type": "array", "items": CIDR},
                    "trustedProxiesDefault": {"type": "array", "items": CIDR},
                    "oidc": obj({"issuers": {"type": "array", "items": ISSUER}}),
                    "logFormat": LOG,
                    "serviceAccount": obj({"annotations": free("ServiceAccount annotations")}),
                    "service": obj({"port": i("Service port", 1, 65535)}),
                    "containerPorts": ports("http", "metrics"),
                    **scheduling(),
                }
            ),
            "edge": obj(
                {
                    "enabled": b("Install the Caddy edge"),
                    "replicaCount": i("Replicas", 1, 100),
                    "image": image(),
                    "host": {**DNS_NAME, "minLength": 1, "description": "Host name clients use"},
                    "tls": obj(
                        {
                            "mode": {"type": "string", "enum": ["acme", "secret", "internal"]},
                            "acme": obj({"email": s("ACME account e-mail", pattern=r"^([^@\s]+@[^@\s]+)?$"), "ca": s("ACME directory URL", pattern=r"^(https://\S+)?$")}),
                            "secretName": SECRET_NAME,
                        }
                    ),
                    "hstsMaxAgeSeconds": i("HSTS max-age", 0),
                    # At most what the API server reads of a body it refuses (api-server/src/drain.rs).
                    "bodyLimits": obj({"api": i("Largest /api body, bytes", 1024, 2 * 1024 * 1024), "webhooks": i("Largest webhook body, bytes", 1024, 32 * 1024 * 1024)}),
                    "streamCloseDelay": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
                    "containerPorts": ports("https", "http", "metrics"),
                    "salesforceMtls": obj({"enabled": b("Serve Salesforce with client certificates"), "port": i("Port", 1, 65535), "caSecret": SECRET_NAME}),
                    "service": obj(
                        {
                            "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                            "httpsPort": i("HTTPS port", 1, 65535),
                            "httpPort": i("HTTP port", 1, 65535),
                            "annotations": free("Service annotations"),
                            "externalTrafficPolicy": {"type": "string", "enum": ["Local", "Cluster"]},
                        }
                    ),
                    **scheduling(),
                }
            ),
            "networkPolicy": obj(
                {
                    "enabled": b("Install NetworkPolicies"),
                    "metricsFrom": free("NetworkPolicyPeers allowed to scrape metrics", "array"),
                    "kubeApiCidrs": {"type": "array", "items": CIDR},
                }
            ),
        }
    ),
}


def render() -> str:
    return json.dumps(SCHEMA, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    (CHART / "values.schema.json").write_text(render())
    print("wrote", CHART / "values.schema.json", file=sys.stderr)

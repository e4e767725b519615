"""The API server against real clients: the Python client, kubectl, and raw HTTP for bad input."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from sandbox.kube import customresources
from sandbox.kube.resources import RESOURCES, ResourceType
from tests.sandbox.harness import ApiHarness


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path, watch_timeout_seconds=1.0)
    yield harness
    harness.close()


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1.25") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def raw(
    api: ApiHarness,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    connection = api.connection()
    connection.request(method, path, body=body, headers={**api.auth_headers(), **(headers or {})})
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    assert response.getheader("Content-Type", "").startswith("application/json")
    return status, json.loads(data)


def test_discovery_lists_subresources_as_real_servers_do(api: ApiHarness) -> None:
    _, core = raw(api, "GET", "/api/v1")
    entries = {r["name"]: r for r in core["resources"]}
    assert entries["pods/eviction"]["group"] == "policy"
    assert entries["pods/eviction"]["version"] == "v1"
    assert entries["pods/eviction"]["kind"] == "Eviction"
    assert "group" not in entries["pods/log"]
    assert "po" in entries["pods"]["shortNames"]
    _, apps = raw(api, "GET", "/apis/apps/v1")
    scale = {r["name"]: r for r in apps["resources"]}["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    _, version = raw(api, "GET", "/version")
    assert (version["major"], version["minor"]) == ("1", "32")


def test_kubectl_get_nodes_shows_zone_labels_in_a_table(api: ApiHarness) -> None:
    for index, zone in enumerate(["us-west-2a", "us-west-2b"]):
        api.on_loop(
            lambda i=index, z=zone: api.store.create(
                "nodes",
                {
                    "metadata": {"name": f"node-{i}", "labels": {"topology.kubernetes.io/zone": z}},
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "nodeInfo": {"kubeletVersion": "v1.32.4-eks"},
                    },
                },
            )
        )
    out = api.kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone").stdout
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "ZONE"]
    assert "node-1" in lines[2] and "us-west-2b" in lines[2] and "Ready" in lines[2]


def test_python_client_crud_and_status_errors(api: ApiHarness) -> None:
    apps = client.AppsV1Api(api.api_client())
    created = apps.create_namespaced_deployment("default", deployment())
    assert created.metadata.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"  # upstream default
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment("default", deployment())
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"

    stale = apps.read_namespaced_deployment("web", "default")
    created.spec.replicas = 5
    apps.replace_namespaced_deployment("web", "default", created)
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("web", "default", stale)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 2

    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'deployments.apps "nope" not found'

    bad = deployment("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    bad["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment("default", bad)
    status = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and status["reason"] == "Invalid"
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert fields == {"spec.template.metadata.labels", "spec.strategy.rollingUpdate.maxUnavailable"}


def test_selectors_in_list(api: ApiHarness) -> None:
    apps = client.AppsV1Api(api.api_client())
    apps.create_namespaced_deployment("default", deployment("web"))
    apps.create_namespaced_deployment("default", deployment("api"))
    by_label = apps.list_namespaced_deployment("default", label_selector="app in (api)")
    assert [d.metadata.name for d in by_label.items] == ["api"]
    by_field = apps.list_namespaced_deployment("default", field_selector="metadata.name=web")
    assert [d.metadata.name for d in by_field.items] == ["web"]
    with pytest.raises(ApiException) as unsupported:
        client.CoreV1Api(api.api_client()).list_namespaced_pod("default", field_selector="spec.x=1")
    assert unsupported.value.status == 400


def test_patches_strategic_merge_json_and_merge(api: ApiHarness) -> None:
    apps = client.AppsV1Api(api.api_client())
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    apps.create_namespaced_deployment("default", body)
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                "spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "3"}]}]},
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", "default", patch)  # strategic merge
    env = {e.name: e.value for e in patched.spec.template.spec.containers[0].env}
    assert env == {"A": "1", "B": "3"}
    assert patched.metadata.generation == 2
    listed = apps.patch_namespaced_deployment(
        "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    )  # JSON patch
    assert listed.spec.replicas == 1
    api.kubectl("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":2}}')
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 2


def test_kubectl_scale_uses_the_scale_subresource(api: ApiHarness) -> None:
    client.AppsV1Api(api.api_client()).create_namespaced_deployment("default", deployment())
    api.kubectl("scale", "deploy/web", "--replicas=5")
    api.kubectl("scale", "deploy/web", "--current-replicas=5", "--replicas=4")  # GET + PUT scale
    failed = api.kubectl("scale", "deploy/web", "--current-replicas=9", "--replicas=1", check=False)
    assert failed.returncode != 0
    scale = client.AppsV1Api(api.api_client()).read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 4 and scale.status.selector == "app=web"


def test_watch_survives_server_closing_the_stream(api: ApiHarness) -> None:
    """The server ends every watch after 1 s; the Python client resumes without replay."""
    core = client.CoreV1Api(api.api_client())
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def follow() -> None:
        stream = watch.Watch()
        for event in stream.stream(core.list_namespaced_config_map, "default", _request_timeout=30):
            seen.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "cm-4":
                stream.stop()
        done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    for index in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{index}"}})
        threading.Event().wait(0.6)  # spans several server-side closes
    assert done.wait(30), f"watch did not see every change: {seen}"
    assert seen == [("ADDED", f"cm-{i}") for i in range(5)]


def test_too_old_watch_gets_410_error_event(tmp_path: Path) -> None:
    harness = ApiHarness(tmp_path)
    try:
        harness.on_loop(
            lambda: setattr(harness.store, "_history", __import__("collections").deque(maxlen=2))
        )
        for index in range(5):
            harness.on_loop(
                lambda i=index: harness.store.create(
                    "configmaps", {"metadata": {"name": f"c{i}", "namespace": "default"}}
                )
            )
        connection = harness.connection()
        connection.request(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1",
            headers=harness.auth_headers(),
        )
        line = connection.getresponse().readline()
        event = json.loads(line)
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        connection.close()
    finally:
        harness.close()


BAD_REQUESTS = [
    pytest.param("POST", "/api/v1/namespaces/default/pods", b"{not json", 400, id="malformed-json"),
    pytest.param("POST", "/api/v1/namespaces/default/pods", b"[1,2]", 400, id="not-an-object"),
    pytest.param("GET", "/api/v1/foos", None, 404, id="unknown-resource"),
    pytest.param("GET", "/apis/nope/v1/things", None, 404, id="unknown-group"),
    pytest.param(
        "POST",
        "/api/v1/namespaces/default/pods",
        b'{"kind":"Service","metadata":{"name":"x"}}',
        400,
        id="wrong-kind",
    ),
    pytest.param(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        b'{"metadata":{"name":"x","namespace":"other"}}',
        400,
        id="namespace-mismatch",
    ),
    pytest.param(
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        b'{"metadata":{"name":"x"}}',
        404,
        id="missing-namespace",
    ),
    pytest.param("GET", "/api/v1/pods?labelSelector=a+in+(b", None, 400, id="bad-label-selector"),
    pytest.param("GET", "/api/v1/pods?watch=true&resourceVersion=abc", None, 400, id="bad-rv"),
    pytest.param("PATCH", "/api/v1/namespaces/default", b"{}", 415, id="patch-wrong-type"),
    pytest.param(
        "PUT",
        "/api/v1/namespaces/default",
        b'{"metadata":{"name":"other"}}',
        400,
        id="name-mismatch",
    ),
    pytest.param(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        b'{"metadata":{"name":"Not_Valid"}}',
        422,
        id="invalid-name",
    ),
    pytest.param("DELETE", "/api/v1/namespaces/default/pods/ghost", None, 404, id="delete-missing"),
]


@pytest.mark.parametrize(("method", "path", "body", "code"), BAD_REQUESTS)
def test_client_mistakes_get_status_errors_never_500(
    api: ApiHarness, method: str, path: str, body: bytes | None, code: int
) -> None:
    status, answer = raw(api, method, path, body, {"Content-Type": "application/json"})
    assert status == code, answer
    assert answer["kind"] == "Status" and answer["code"] == code and answer["reason"]
    alive, _ = raw(api, "GET", "/version")
    assert alive == 200


# One object of each kind the typed client can read back: its pydantic models insist on
# the fields upstream requires (EndpointSlice.addressType, Event.involvedObject, ...).
_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "doomed"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
_WORKLOAD = {"selector": {"matchLabels": {"app": "doomed"}}, "template": _TEMPLATE}
_REGARDING = {"kind": "Pod", "name": "p", "namespace": "default"}
SAMPLES: dict[str, dict[str, Any]] = {
    "namespaces": {},
    "nodes": {},
    "pods": {"spec": _TEMPLATE["spec"]},
    "services": {"spec": {"selector": {"app": "doomed"}, "ports": [{"port": 80}]}},
    "endpoints": {"subsets": []},
    "events": {"involvedObject": _REGARDING, "reason": "Tested", "type": "Normal"},
    "configmaps": {"data": {"a": "b"}},
    "secrets": {"data": {"a": "Yg=="}},
    "serviceaccounts": {},
    "apps/deployments": {"spec": _WORKLOAD},
    "apps/replicasets": {"spec": _WORKLOAD},
    "apps/daemonsets": {"spec": _WORKLOAD},
    "apps/statefulsets": {"spec": {**_WORKLOAD, "serviceName": "doomed"}},
    "autoscaling/horizontalpodautoscalers": {
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
        }
    },
    "policy/poddisruptionbudgets": {
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "doomed"}}}
    },
    "discovery.k8s.io/endpointslices": {"addressType": "IPv4", "endpoints": []},
    "persistentvolumes": {
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/nonexistent/doomed"},
        }
    },
    "persistentvolumeclaims": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    },
    "batch/cronjobs": {
        "spec": {
            "schedule": "0 10 * * 3",
            "jobTemplate": {
                "spec": {"template": {"spec": {**_TEMPLATE["spec"], "restartPolicy": "Never"}}}
            },
        }
    },
    "storage.k8s.io/storageclasses": {"provisioner": "kubernetes.io/aws-ebs"},
    "networking.k8s.io/ingresses": {
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    },
    "networking.k8s.io/networkpolicies": {"spec": {"podSelector": {}}},
    "events.k8s.io/events": {
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": _REGARDING,
        "reason": "Tested",
        "action": "Testing",
        "type": "Normal",
        "reportingController": "tests",
        "reportingInstance": "tests-1",
    },
    "coordination.k8s.io/leases": {"spec": {"holderIdentity": "tests"}},
    "replicationcontrollers": {
        "spec": {"replicas": 0, "selector": {"app": "doomed"}, "template": _TEMPLATE}
    },
    "batch/jobs": {
        "spec": {
            "suspend": True,
            "template": {**_TEMPLATE, "spec": {**_TEMPLATE["spec"], "restartPolicy": "Never"}},
        }
    },
    "apiregistration.k8s.io/apiservices": {
        "metadata": {"name": "v1beta1.doomed.example.com"},
        "spec": {
            "group": "doomed.example.com",
            "version": "v1beta1",
            "service": {"name": "doomed", "namespace": "default", "port": 443},
            "groupPriorityMinimum": 100,
            "versionPriority": 10,
        },
    },
    "rbac.authorization.k8s.io/roles": {
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    },
    "rbac.authorization.k8s.io/rolebindings": {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "doomed"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
    },
    "rbac.authorization.k8s.io/clusterroles": {
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    },
    "rbac.authorization.k8s.io/clusterrolebindings": {
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "doomed",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
    },
}
# Custom resources have no typed client: tests/sandbox/kube/test_chaos_api.py deletes them.
DELETABLE = [
    rt
    for rt in RESOURCES
    if rt.stored and "delete" in rt.verbs and customresources.by_key(rt.key) is None
]


def typed_api(api: ApiHarness, rt: ResourceType) -> Any:
    """`networking.k8s.io`/`v1` -> `client.NetworkingV1Api`, core -> `CoreV1Api`."""
    group = rt.group.removesuffix(".k8s.io") or "core"
    prefix = "".join(part.capitalize() for part in group.split("."))
    return getattr(client, f"{prefix}{rt.version.capitalize()}Api")(api.api_client())


def test_every_deletable_kind_has_a_sample() -> None:
    assert sorted(SAMPLES) == sorted(rt.key for rt in DELETABLE)


@pytest.mark.parametrize("rt", DELETABLE, ids=lambda rt: rt.key)
def test_the_typed_client_reads_every_delete_answer(api: ApiHarness, rt: ResourceType) -> None:
    """The kind where upstream's registry returns the deleted object, else a Status.

    The 37.x client validates the answer against the type its OpenAPI gives the
    operation (V1Service for services), so a wrong answer raises here.
    """
    typed = typed_api(api, rt)
    # APIService -> api_service, ReplicationController -> replication_controller
    operation = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", rt.kind).lower()
    where: tuple[str, ...] = ("default",) if rt.namespaced else ()
    if rt.namespaced:
        operation = f"namespaced_{operation}"
    body = {"apiVersion": rt.api_version, "kind": rt.kind, **copy.deepcopy(SAMPLES[rt.key])}
    name = body.get("metadata", {}).get("name", "doomed")
    body["metadata"] = {"name": name}
    getattr(typed, f"create_{operation}")(*where, body)

    answer = getattr(typed, f"delete_{operation}")(name, *where)

    if rt.returns_deleted_object and not isinstance(answer, dict):
        assert type(answer).__name__ == f"{rt.version.capitalize()}{rt.kind}"  # V1Service
        assert answer.metadata.name == name
    elif rt.returns_deleted_object:  # the OpenAPI says Status (namespaces), so a plain dict
        assert (answer["kind"], answer["metadata"]["name"]) == (rt.kind, name)
    else:
        assert isinstance(answer, dict), type(answer)
        assert (answer["kind"], answer["status"]) == ("Status", "Success")
        assert (answer["details"]["name"], answer["details"]["kind"]) == (name, rt.plural)


def test_delete_answers_the_object_held_by_finalizers_and_202_only_for_orphan_false(
    api: ApiHarness,
) -> None:
    """handlers/delete.go: 202 only when not removed and orphanDependents=false."""
    path = "/api/v1/namespaces/default/configmaps"
    for name in ("held", "held-too"):
        body = {"metadata": {"name": name, "finalizers": ["example.com/hold"]}}
        raw(api, "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    code, held = raw(api, "DELETE", f"{path}/held")
    assert (code, held["kind"]) == (200, "ConfigMap")
    assert held["metadata"]["deletionTimestamp"]
    code, accepted = raw(api, "DELETE", f"{path}/held-too?orphanDependents=false")
    assert (code, accepted["kind"]) == (202, "ConfigMap")
    code, bad = raw(api, "DELETE", f"{path}/held-too?orphanDependents=maybe")
    assert (code, bad["reason"]) == (400, "BadRequest")


def test_delete_collection_answers_the_list_it_deleted(api: ApiHarness) -> None:
    core = client.CoreV1Api(api.api_client())
    for name in ("a", "b"):
        core.create_namespaced_service_account("default", {"metadata": {"name": name}})
    before = core.list_namespaced_service_account("default").metadata.resource_version
    code, listed = raw(api, "DELETE", "/api/v1/namespaces/default/serviceaccounts")
    assert (code, listed["kind"]) == (200, "ServiceAccountList")
    assert listed["metadata"]["resourceVersion"] == before
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a", "b"]
    assert all("kind" not in item for item in listed["items"])
    assert core.list_namespaced_service_account("default").items == []


def test_kubectl_explain_reads_the_served_openapi_v3(api: ApiHarness) -> None:
    out = api.kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out, out
    rolling = api.kubectl("explain", "deploy.spec.strategy.rollingUpdate.maxSurge").stdout
    assert "FIELD: maxSurge <IntOrString>" in rolling, rolling
    missing = api.kubectl("explain", "deployment.spec.nonesuch", check=False)
    assert missing.returncode == 1 and 'field "nonesuch" does not exist' in missing.stderr


def _manifest(tmp_path: Path, name: str, obj: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(obj))
    return str(path)


def test_kubectl_apply_validate_strict_is_checked_by_the_server(
    api: ApiHarness, tmp_path: Path
) -> None:
    bad = deployment()
    bad["spec"]["replicaz"] = 3
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    refused = api.kubectl(
        "apply", "--validate=strict", "-f", _manifest(tmp_path, "bad", bad), check=False
    )
    assert refused.returncode == 1
    assert (
        'Error from server (BadRequest): error when creating "' in refused.stderr
        and 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding '
        'error: unknown field "spec.replicaz", unknown field '
        '"spec.template.spec.containers[0].imagePullPolcy"'
        in refused.stderr
    ), refused.stderr
    valid = _manifest(tmp_path, "good", deployment())
    good = api.kubectl("apply", "--validate=strict", "-f", valid)
    assert good.stdout.strip() == "deployment.apps/web created"
    changed = deployment(replicas=4)
    changed["spec"]["foo"] = 1
    patch = api.kubectl(
        "apply", "--validate=strict", "-f", _manifest(tmp_path, "patch", changed), check=False
    )
    assert patch.returncode == 1
    assert "The request is invalid: patch: Invalid value: " in patch.stderr
    assert 'strict decoding error: unknown field "spec.foo"' in patch.stderr
    warned = api.kubectl("apply", "--validate=warn", "-f", _manifest(tmp_path, "warn", changed))
    assert warned.stdout.strip() == "deployment.apps/web configured"
    assert 'Warning: unknown field "spec.foo"' in warned.stderr

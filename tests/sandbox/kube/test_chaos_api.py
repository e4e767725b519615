"""NetworkChaos and DNSChaos through the API: the Python client's CustomObjectsApi and kubectl.

A light sandbox (ApiHarness: store and API server, no backing services) with the
vendored CRDs installed, as the control plane installs them at start.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from sandbox.kube import customresources
from sandbox.kube.errors import ApiError
from sandbox.kube.store import Store
from tests.sandbox.harness import ApiHarness

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"
DELAY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "NetworkChaos",
    "metadata": {"name": "redis-delay", "namespace": "harmonyflow"},
    "spec": {
        "action": "delay",
        "mode": "all",
        "selector": {"labelSelectors": {"app": "session-state"}},
        "delay": {"latency": "100ms"},
        "externalTargets": ["127.0.3.10"],
        "duration": "30s",
    },
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path, watch_timeout_seconds=1.0)
    harness.on_loop(lambda: customresources.install(harness.store))
    yield harness
    harness.close()


def delay(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(DELAY)
    body["spec"].update(spec)
    return body


# ---- admission on the store: schema (422) then Chaos Mesh's webhooks (403) ----


@pytest.fixture
def store() -> Store:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "harmonyflow"}})
    return store


def test_admission_prunes_unknown_fields_and_applies_schema_and_webhook_defaults(
    store: Store,
) -> None:
    created = store.create("chaos-mesh.org/networkchaos", delay(typo=1))
    assert "typo" not in created["spec"]
    assert created["spec"]["direction"] == "to"  # CRD default
    assert created["spec"]["selector"]["namespaces"] == ["harmonyflow"]  # webhook
    assert created["spec"]["delay"] == {"latency": "100ms", "jitter": "0ms", "correlation": "0"}
    assert created["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [
        pytest.param(
            {"action": "sideways"},
            "spec.action",
            "FieldValueNotSupported",
            'Unsupported value: "sideways": supported values: "netem", "delay"',
            id="unknown-action",
        ),
        pytest.param(
            {"mode": "most"},
            "spec.mode",
            "FieldValueNotSupported",
            'Unsupported value: "most"',
            id="unknown-mode",
        ),
        pytest.param(
            {"delay": {"latency": "1S"}},
            "spec.delay.latency",
            "FieldValueInvalid",
            "spec.delay.latency in body should match",
            id="latency-pattern",
        ),
        pytest.param(
            {"bandwidth": {"rate": "1mbps", "limit": 0, "buffer": 1}},
            "spec.bandwidth.limit",
            "FieldValueInvalid",
            "should be greater than or equal to 1",
            id="bandwidth-minimum",
        ),
        pytest.param(
            {"value": 3},
            "spec.value",
            "FieldValueTypeInvalid",
            "must be of type string",
            id="value-type",
        ),
        pytest.param(
            {"selector": None},
            "spec.selector",
            "FieldValueTypeInvalid",
            "must be of type object",
            id="selector-null",
        ),
    ],
)
def test_schema_violations_are_422_with_one_cause_per_field(
    store: Store, spec: dict[str, Any], field: str, reason: str, message: str
) -> None:
    with pytest.raises(ApiError) as raised:
        store.create("chaos-mesh.org/networkchaos", delay(**spec))
    error = raised.value
    assert (error.code, error.reason, error.kind, error.group) == (
        422,
        "Invalid",
        "NetworkChaos",
        "chaos-mesh.org",
    )
    assert error.message.startswith('NetworkChaos.chaos-mesh.org "redis-delay" is invalid: ')
    cause = next(c for c in error.causes if c.field == field)
    assert cause.reason == reason and message in cause.message


def test_a_missing_required_field_is_a_required_value(store: Store) -> None:
    body = delay()
    del body["spec"]["mode"]
    with pytest.raises(ApiError) as raised:
        store.create("chaos-mesh.org/networkchaos", body)
    assert [c.to_json() for c in raised.value.causes] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.mode"}
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"mode": "fixed", "value": "0"},
            'Spec.PodSelector.value: Invalid value: "0": value must be greater than 0 with '
            "mode:fixed",
            id="fixed-needs-a-positive-value",
        ),
        pytest.param(
            {"mode": "fixed-percent"},
            'Spec.PodSelector.value: Invalid value: "": parse value field error:strconv.Atoi: '
            'parsing "": invalid syntax',
            id="fixed-percent-needs-a-value",
        ),
        pytest.param(
            {"mode": "random-max-percent", "value": "101"},
            "value of 101 is invalid, Must be (0,100] with mode:random-max-percent",
            id="percent-range",
        ),
        pytest.param(
            {"duration": "30"},
            'Spec.Duration: Invalid value: "30": parse duration field error: time: missing unit '
            'in duration "30"',
            id="duration-needs-a-unit",
        ),
        pytest.param(
            {"direction": "from", "externalTargets": None},
            "`from` and `both` direction cannot be used when targets is empty in netem action",
            id="from-needs-a-target",
        ),
        pytest.param(
            {"direction": "both"},
            '[Spec.direction: Invalid value: "both": external targets cannot be used with',
            id="both-refuses-external-targets-and-lists-every-error",
        ),
        pytest.param(
            {"loss": {"loss": "lots"}},
            'Spec.TcParameter.Loss.Loss: Invalid value: "lots": parse correlation field error:',
            id="loss-must-be-a-float",
        ),
        pytest.param(
            {"action": "bandwidth", "bandwidth": {"rate": "1 furlong", "limit": 1, "buffer": 1}},
            'Spec.TcParameter.Bandwidth.Rate: Invalid value: "1 furlong": parse rate field '
            "error:invalid unit",
            id="bandwidth-unit",
        ),
    ],
)
def test_chaos_mesh_webhook_refusals_are_403_denials(
    store: Store, spec: dict[str, Any], message: str
) -> None:
    body = delay(**spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(ApiError) as raised:
        store.create("chaos-mesh.org/networkchaos", body)
    error = raised.value
    assert (error.code, error.reason) == (403, "Forbidden")
    prefix = 'admission webhook "vnetworkchaos.kb.io" denied the request: '
    assert error.message.startswith(prefix) and message in error.message, error.message


def test_partition_from_without_a_target_is_admitted(store: Store) -> None:
    body = delay(action="partition", direction="from")
    del body["spec"]["externalTargets"], body["spec"]["delay"]
    assert store.create("chaos-mesh.org/networkchaos", body)["spec"]["direction"] == "from"


def test_the_spec_cannot_change_but_metadata_and_status_can(store: Store) -> None:
    store.create("chaos-mesh.org/networkchaos", delay())
    key = "chaos-mesh.org/networkchaos"
    with pytest.raises(ApiError, match="Cannot update chaos spec") as raised:
        store.mutate(key, "harmonyflow", "redis-delay", lambda o: o["spec"].update(mode="one"))
    assert raised.value.code == 403
    paused = store.mutate(
        key,
        "harmonyflow",
        "redis-delay",
        lambda o: (
            o["metadata"]
            .setdefault("annotations", {})
            .update({"experiment.chaos-mesh.org/pause": "true"})
        ),
    )
    assert paused["metadata"]["generation"] == 1
    # No status subresource in the CRD: status is written with the object, and counts.
    running = store.mutate(
        key,
        "harmonyflow",
        "redis-delay",
        lambda o: o.update(status={"experiment": {"desiredPhase": "Run"}}),
    )
    assert running["status"] == {"experiment": {"desiredPhase": "Run"}}
    assert running["metadata"]["generation"] == 2


def test_dnschaos_is_defaulted_and_validated_by_its_own_webhook(store: Store) -> None:
    body = {
        "metadata": {"name": "db-dns", "namespace": "harmonyflow"},
        "spec": {"action": "error", "mode": "one", "selector": {}, "patterns": ["postgres.*"]},
    }
    created = store.create("chaos-mesh.org/dnschaos", body)
    assert created["spec"]["selector"]["namespaces"] == ["harmonyflow"]
    body["metadata"]["name"] = "db-dns-2"
    body["spec"]["duration"] = "soon"
    with pytest.raises(ApiError) as raised:
        store.create("chaos-mesh.org/dnschaos", body)
    assert raised.value.message.startswith(
        'admission webhook "vdnschaos.kb.io" denied the request: Spec.Duration: '
    )


# ---- through the API: the Python client ----


def test_custom_objects_api_creates_lists_watches_patches_and_deletes(api: ApiHarness) -> None:
    custom = client.CustomObjectsApi(api.api_client())
    args = (GROUP, VERSION, "harmonyflow", "networkchaos")
    created = custom.create_namespaced_custom_object(*args, delay())
    assert created["spec"]["direction"] == "to"

    got = custom.get_namespaced_custom_object(*args, "redis-delay")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = custom.list_cluster_custom_object(GROUP, VERSION, "networkchaos")
    assert (listed["kind"], [i["metadata"]["name"] for i in listed["items"]]) == (
        "NetworkChaosList",
        ["redis-delay"],
    )

    custom.patch_namespaced_custom_object(
        *args, "redis-delay", {"status": {"experiment": {"desiredPhase": "Run"}}}
    )
    events = list(
        watch.Watch().stream(
            custom.list_namespaced_custom_object,
            *args,
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=1,
        )
    )
    assert [(e["type"], e["object"].get("status")) for e in events] == [
        ("MODIFIED", {"experiment": {"desiredPhase": "Run"}})
    ]

    with pytest.raises(ApiException) as raised:
        custom.get_namespaced_custom_object_status(*args, "redis-delay")
    assert raised.value.status == 404  # the CRD declares no status subresource

    answer = custom.delete_namespaced_custom_object(*args, "redis-delay")
    assert (answer["kind"], answer["status"], answer["details"]["kind"]) == (
        "Status",
        "Success",
        "networkchaos",
    )
    assert custom.list_cluster_custom_object(GROUP, VERSION, "networkchaos")["items"] == []


def test_the_client_gets_a_422_status_with_causes(api: ApiHarness) -> None:
    custom = client.CustomObjectsApi(api.api_client())
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "harmonyflow", "networkchaos", delay(direction="sideways")
        )
    status = json.loads(raised.value.body)
    assert (raised.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.direction"


def test_crds_are_served_read_only_and_agree_with_discovery(api: ApiHarness) -> None:
    extensions = client.ApiextensionsV1Api(api.api_client())
    crd = extensions.read_custom_resource_definition("networkchaos.chaos-mesh.org")
    assert (crd.spec.names.kind, crd.spec.scope) == ("NetworkChaos", "Namespaced")
    assert {c.type: c.status for c in crd.status.conditions} == {
        "NamesAccepted": "True",
        "Established": "True",
    }
    resources = client.CustomObjectsApi(api.api_client()).get_api_resources(GROUP, VERSION)
    assert sorted((r.name, r.kind, r.namespaced) for r in resources.resources) == [
        ("dnschaos", "DNSChaos", True),
        ("networkchaos", "NetworkChaos", True),
    ]
    with pytest.raises(ApiException) as raised:
        extensions.delete_custom_resource_definition("networkchaos.chaos-mesh.org")
    assert raised.value.status == 405


# ---- through the API: kubectl ----


def test_kubectl_applies_gets_and_deletes_chaos(api: ApiHarness, tmp_path: Path) -> None:
    manifest = tmp_path / "chaos.json"
    manifest.write_text(json.dumps(delay()))
    applied = api.kubectl("apply", "-f", str(manifest))
    assert "networkchaos.chaos-mesh.org/redis-delay created" in applied.stdout

    table = api.kubectl("get", "networkchaos", "-A").stdout.splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "ACTION", "DURATION"]
    assert table[1].split() == ["harmonyflow", "redis-delay", "delay", "30s"]

    crds = api.kubectl("get", "crd", "networkchaos.chaos-mesh.org").stdout.splitlines()
    assert crds[0].split() == ["NAME", "CREATED", "AT"]

    bad = delay(mode="fixed")
    bad["metadata"]["name"] = "no-value"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    refused = api.kubectl("apply", "-f", str(tmp_path / "bad.json"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "vnetworkchaos.kb.io" denied the request' in refused.stderr

    deleted = api.kubectl("delete", "-f", str(manifest))
    assert 'networkchaos.chaos-mesh.org "redis-delay" deleted' in deleted.stdout
    empty = api.kubectl("get", "networkchaos", "-A")
    assert "No resources found" in empty.stderr

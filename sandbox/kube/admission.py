"""Defaulting and validation, as the API server applies them before a write.

Defaults are upstream's (`pkg/apis/*/v1/defaults.go`, the DefaultTolerationSeconds
admission plugin); validation covers the mistakes clients really make and
answers 422 Invalid with one cause per field, the way the API server does.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from typing import Any, Protocol

from sandbox.kube import (
    chaoswebhook,
    cronjobspec,
    customresources,
    podidentity,
    storageadmission,
    structural,
)
from sandbox.kube.clock import Clock, rfc3339
from sandbox.kube.clusterips import ClusterIpAllocator
from sandbox.kube.errors import Cause, internal, invalid
from sandbox.kube.resources import ResourceType
from sandbox.kube.selectors import selector_from_match

KubeObject = dict[str, Any]

DEFAULT_TOLERATION_SECONDS = 300
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


class StoreView(Protocol):
    """What admission reads of the store that admits a write (the store hands itself in):
    objects to default from, and the API server's flags. Admission writes nothing there,
    which is why it needs no more of the store than this."""

    clock: Clock
    rng: random.Random
    default_toleration_seconds: int
    cluster_ips: ClusterIpAllocator
    pod_identity: podidentity.PodIdentitySettings | None

    def find(self, resource: str, namespace: str, name: str) -> KubeObject | None: ...

    def list(self, resource: str, namespace: str | None = None) -> list[KubeObject]: ...


# ---- entry points used by the store ----


# A new object's status is the Go zero value, so fields without omitempty appear as 0/null.
ZERO_STATUS: dict[str, KubeObject] = {
    "apps/replicasets": {"replicas": 0},
    "apps/statefulsets": {"replicas": 0, "availableReplicas": 0},
    "apps/daemonsets": {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    "autoscaling/horizontalpodautoscalers": {"desiredReplicas": 0, "currentMetrics": None},
    "policy/poddisruptionbudgets": {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    },
    "services": {"loadBalancer": {}},
    "replicationcontrollers": {"replicas": 0},
    "persistentvolumeclaims": {"phase": "Pending"},
    "persistentvolumes": {"phase": "Pending"},
}
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def prepare_create(rt: ResourceType, obj: KubeObject, store: StoreView) -> None:
    if customresources.by_key(rt.key) is not None:
        _prepare_custom(rt, obj)
        return
    if rt.has_status and rt.key != "nodes":
        obj["status"] = copy.deepcopy(ZERO_STATUS.get(rt.key, {}))
    hook = _CREATE_HOOKS.get(rt.key)
    if hook is not None:
        hook(obj, store)
    _default(rt, obj)


def prepare_update(rt: ResourceType, new: KubeObject, old: KubeObject) -> None:
    if customresources.by_key(rt.key) is not None:
        _prepare_custom(rt, new)
        return
    _default(rt, new)


def validate(rt: ResourceType, obj: KubeObject, old: KubeObject | None) -> None:
    causes = list(_validate_metadata(rt, obj))
    validator = _VALIDATORS.get(rt.key)
    if validator is not None:
        causes += validator(obj)
    custom = customresources.by_key(rt.key)
    if custom is not None:
        causes += structural.validate(custom.schema, obj)
    if old is not None:
        causes += _immutable(rt, obj, old)
    if causes:
        raise invalid(rt.kind, obj.get("metadata", {}).get("name", ""), causes, rt.group)
    if rt.key in _WEBHOOKED:
        # Validating admission webhooks run after the schema (registry Store.Create/Update).
        errors = chaoswebhook.denials(rt.key, obj, old)
        if errors:
            raise chaoswebhook.denied(rt.key, rt.kind, errors)


def _prepare_custom(rt: ResourceType, obj: KubeObject) -> None:
    """A custom resource as decoding and the mutating webhooks leave it: pruned, defaulted.

    apiextensions prunes unknown fields and applies the schema's defaults while
    decoding; Chaos Mesh's mutating webhook runs next (chaoswebhook.py).
    """
    custom = customresources.by_key(rt.key)
    assert custom is not None
    structural.prune(custom.schema, obj)
    structural.apply_defaults(custom.schema, obj)
    if rt.key in _WEBHOOKED:
        chaoswebhook.default(rt.key, obj)


def deletion_grace_seconds(rt: ResourceType, obj: KubeObject, requested: int | None) -> int:
    """Pods terminate gracefully (pkg/registry/core/pod/strategy.go CheckGracefulDelete)."""
    if rt.key != "pods":
        return 0
    spec, status = obj.get("spec", {}), obj.get("status", {})
    if requested is None:
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
    else:
        grace = 1 if requested < 0 else int(requested)
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    return grace


def on_delete_marked(rt: ResourceType, obj: KubeObject) -> None:
    if rt.key == "namespaces":
        obj.setdefault("status", {})["phase"] = "Terminating"


# ---- defaults ----


def _default(rt: ResourceType, obj: KubeObject) -> None:
    defaulter = _DEFAULTERS.get(rt.key)
    if defaulter is not None:
        defaulter(obj)


def default_pod_spec(spec: KubeObject) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        _default_container(container)
    for container in spec.get("initContainers") or []:
        _default_container(container)


def _default_container(container: KubeObject) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if probe is not None:
            for key, value in PROBE_DEFAULTS.items():
                probe.setdefault(key, value)
            if "httpGet" in probe:
                probe["httpGet"].setdefault("scheme", "HTTP")
                probe["httpGet"].setdefault("path", "/")


def _default_pod(pod: KubeObject) -> None:
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    for container in spec.get("containers") or []:
        # SetDefaults_Pod: a limit with no request makes the request equal to the limit
        resources = container.setdefault("resources", {})
        for name, value in (resources.get("limits") or {}).items():
            resources.setdefault("requests", {}).setdefault(name, value)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)


def _default_toleration_seconds(spec: KubeObject, seconds: int) -> None:
    """The DefaultTolerationSeconds admission plugin: on create only, as upstream."""
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }
            )


def _default_template(obj: KubeObject) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def _default_deployment(deployment: KubeObject) -> None:
    spec = deployment.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _default_template(deployment)


def _default_replicaset(replicaset: KubeObject) -> None:
    replicaset.setdefault("spec", {}).setdefault("replicas", 1)
    _default_template(replicaset)


def _default_rc(rc: KubeObject) -> None:
    """`SetDefaults_ReplicationController`: selector and labels from the template's labels."""
    spec = rc.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if template_labels:
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        metadata = rc.setdefault("metadata", {})
        if not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)
    _default_template(rc)


def _default_job(job: KubeObject) -> None:
    """`SetDefaults_Job` (batch/v1): completions/parallelism 1 when both unset, and the rest."""
    spec = job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _default_template(job)


def _default_cronjob(cronjob: KubeObject) -> None:
    cronjobspec.default_cronjob(cronjob)
    job_spec = cronjob["spec"]["jobTemplate"]["spec"]
    default_pod_spec(job_spec.setdefault("template", {}).setdefault("spec", {}))


def _create_claim(claim: KubeObject, store: StoreView) -> None:
    """The DefaultStorageClass and StorageObjectInUseProtection admission plugins."""
    storageadmission.set_default_class(claim, store.list(storageadmission.STORAGE_CLASSES))
    storageadmission.add_finalizer(claim, storageadmission.PVC_PROTECTION)


def _create_volume(volume: KubeObject, store: StoreView) -> None:
    storageadmission.add_finalizer(volume, storageadmission.PV_PROTECTION)


def _job_selector(job: KubeObject, store: StoreView) -> None:
    """The generated selector (job strategy `generateSelector`), from the uid just assigned.

    Unless `spec.manualSelector` is true the selector is
    `batch.kubernetes.io/controller-uid=<uid>`, and the template carries that label,
    `batch.kubernetes.io/job-name`, and the legacy `controller-uid` / `job-name`.
    """
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    metadata = job.get("metadata") or {}
    uid, name = metadata.get("uid", ""), metadata.get("name", "")
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {JOB_UID_LABEL: uid, JOB_NAME_LABEL: name, "controller-uid": uid, "job-name": name}
    )
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}


def _default_service(service: KubeObject) -> None:
    spec = service.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _default_hpa(hpa: KubeObject) -> None:
    spec = hpa.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    behavior = spec.get("behavior")
    if behavior is not None:
        up = behavior.setdefault("scaleUp", {})
        up.setdefault("stabilizationWindowSeconds", 0)
        up.setdefault("selectPolicy", "Max")
        up.setdefault(
            "policies",
            [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        )
        down = behavior.setdefault("scaleDown", {})
        down.setdefault("selectPolicy", "Max")
        down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])


def _default_pdb(pdb: KubeObject) -> None:
    pdb.setdefault("spec", {})


def _create_pod(pod: KubeObject, store: StoreView) -> None:
    _default_toleration_seconds(pod.setdefault("spec", {}), store.default_toleration_seconds)
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod.get("spec", {}))}
    _mount_service_account_token(pod.setdefault("spec", {}), store)
    _add_pod_identity(pod, store)


def _add_pod_identity(pod: KubeObject, store: StoreView) -> None:
    """EKS's pod identity webhook (`podidentity.py`), after the built-in plugins as
    mutating webhooks run; only where the sandbox serves AWS."""
    if store.pod_identity is None:
        return
    namespace = pod.get("metadata", {}).get("namespace") or "default"
    name = pod["spec"].get("serviceAccountName") or "default"
    account = store.find("serviceaccounts", namespace, name)
    mutated = podidentity.with_pod_identity(pod, account, store.pod_identity)
    if mutated is not pod:
        pod["spec"] = mutated["spec"]


def _mount_service_account_token(spec: KubeObject, store: StoreView) -> None:
    """The ServiceAccount admission plugin: every pod gets a projected API-access volume.

    Clients rely on it (chaostoolkit-kubernetes' drain iterates `spec.volumes`).
    """
    if spec.get("automountServiceAccountToken") is False:
        return
    volumes = spec.setdefault("volumes", [])
    if any(v.get("name", "").startswith("kube-api-access-") for v in volumes):
        return
    name = "kube-api-access-" + "".join(
        store.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
    )
    volumes.append(
        {
            "name": name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    for container in spec.get("containers") or []:
        container.setdefault("volumeMounts", []).append(
            {
                "name": name,
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        )


def _create_namespace(namespace: KubeObject, store: StoreView) -> None:
    namespace.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    labels = namespace["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = namespace["metadata"].get("name", "")
    namespace["status"] = {"phase": "Active"}


def _create_service(service: KubeObject, store: StoreView) -> None:
    """A ClusterIP from the sandbox's range (`sandbox.kube.clusterips`), as the service
    registry's ipallocator gives one; an ExternalName Service gets none."""
    spec = service.setdefault("spec", {})
    if spec.get("type") == "ExternalName":
        return
    used = {str(s.get("spec", {}).get("clusterIP")) for s in store.list("services")}
    requested = spec.get("clusterIP")
    if requested in (None, ""):
        allocated = store.cluster_ips.allocate(used)
        if allocated is None:
            raise internal("failed to allocate a serviceIP: range is full")
        spec["clusterIP"] = allocated
    elif requested != "None" and not store.cluster_ips.reserve(str(requested), used):
        name = service.get("metadata", {}).get("name", "")
        message = f"failed to allocate IP {requested}: provided IP is already allocated"
        raise invalid("Service", name, [Cause("FieldValueInvalid", message, "spec.clusterIPs")])
    spec["clusterIPs"] = [spec["clusterIP"]]


def qos_class(spec: KubeObject) -> str:
    """Guaranteed / Burstable / BestEffort from requests and limits."""
    containers = spec.get("containers") or []
    requests_any = limits_all = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_any = requests_any or bool(requests) or bool(limits)
        for resource in ("cpu", "memory"):
            limit = limits.get(resource)
            request = requests.get(resource, limit)
            if limit is None or str(request) != str(limit):
                guaranteed = False
        limits_all = limits_all or bool(limits)
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


# ---- validation ----


def _required(path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", path)


def _bad_value(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {value!r}: {detail}", path)


def _validate_metadata(rt: ResourceType, obj: KubeObject) -> list[Cause]:
    name = obj.get("metadata", {}).get("name")
    if not name:
        return [Cause("FieldValueRequired", "name or generateName is required", "metadata.name")]
    if rt.key == "events":
        return []
    if rt.group == "rbac.authorization.k8s.io":
        # rbac validation.ValidateRBACName is path.IsValidPathSegmentName (`system:...`)
        if name in (".", "..") or any(c in str(name) for c in "/%"):
            return [_bad_value("metadata.name", name, "may not contain '/' or '%'")]
        return []
    pattern = DNS_LABEL if rt.key in ("namespaces", "services") else DNS_SUBDOMAIN
    if not isinstance(name, str) or len(name) > 253 or not pattern.match(name):
        detail = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
        return [_bad_value("metadata.name", name, detail)]
    return []


def _validate_containers(spec: KubeObject, path: str) -> list[Cause]:
    containers = spec.get("containers")
    if not containers:
        return [_required(f"{path}.containers")]
    causes = []
    names = set()
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        if not container.get("name"):
            causes.append(_required(f"{where}.name"))
        elif container["name"] in names:
            causes.append(
                Cause(
                    "FieldValueDuplicate",
                    f"Duplicate value: {container['name']!r}",
                    f"{where}.name",
                )
            )
        names.add(container.get("name"))
        if not container.get("image"):
            causes.append(_required(f"{where}.image"))
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(kind) or {}
            for key in ("periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold"):
                if key in probe and (not isinstance(probe[key], int) or probe[key] < 1):
                    causes.append(
                        _bad_value(
                            f"{where}.{kind}.{key}",
                            probe[key],
                            "must be greater than or equal to 1",
                        )
                    )
    return causes


def _validate_pod(pod: KubeObject) -> list[Cause]:
    return _validate_containers(pod.get("spec") or {}, "spec")


def _replicas_causes(spec: KubeObject) -> list[Cause]:
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        return [_bad_value("spec.replicas", replicas, "must be greater than or equal to 0")]
    return []


def _validate_workload(obj: KubeObject) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _replicas_causes(spec)
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(_required("spec.selector"))
    elif not _selector_matches(selector, labels):
        causes.append(
            _bad_value(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes += _validate_containers(
        (spec.get("template") or {}).get("spec") or {}, "spec.template.spec"
    )
    return causes


def _restart_policy(spec: KubeObject, allowed: tuple[str, ...]) -> list[Cause]:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy in allowed:
        return []
    supported = ", ".join(f'"{value}"' for value in allowed)
    return [
        Cause(
            "FieldValueNotSupported",
            f'Unsupported value: "{policy}": supported values: {supported}',
            "spec.template.spec.restartPolicy",
        )
    ]


def _validate_rc(rc: KubeObject) -> list[Cause]:
    """ValidateReplicationControllerSpec: a non-empty selector map matching the template."""
    spec = rc.get("spec") or {}
    causes = _replicas_causes(spec)
    selector = spec.get("selector") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(_required("spec.selector"))
    elif any(labels.get(key) != value for key, value in selector.items()):
        causes.append(
            _bad_value(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes += _restart_policy(spec, ("Always",))
    causes += _validate_containers(
        (spec.get("template") or {}).get("spec") or {}, "spec.template.spec"
    )
    return causes


def _validate_job(job: KubeObject) -> list[Cause]:
    spec = job.get("spec") or {}
    causes: list[Cause] = []
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(_bad_value(f"spec.{key}", value, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(_required("spec.selector"))
    elif not _selector_matches(selector, labels):
        causes.append(
            _bad_value(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes += _restart_policy(spec, ("OnFailure", "Never"))
    causes += _validate_containers(
        (spec.get("template") or {}).get("spec") or {}, "spec.template.spec"
    )
    return causes


def _validate_cronjob(cronjob: KubeObject) -> list[Cause]:
    """cronjobspec's checks, and the job template's pod spec as a Job's."""
    job_spec = ((cronjob.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
    prefix = "spec.jobTemplate.spec.template.spec"
    causes = cronjobspec.cronjob_causes(cronjob)
    causes += [
        Cause(c.reason, c.message, c.field.replace("spec.template.spec", prefix, 1))
        for c in _restart_policy(job_spec, ("OnFailure", "Never"))
    ]
    return causes + _validate_containers((job_spec.get("template") or {}).get("spec") or {}, prefix)


def _validate_apiservice(apiservice: KubeObject) -> list[Cause]:
    """apiregistration validation: the name is `<version>.<group>`; a service needs priorities."""
    spec = apiservice.get("spec") or {}
    name = (apiservice.get("metadata") or {}).get("name", "")
    causes: list[Cause] = []
    expected = f"{spec.get('version', '')}.{spec.get('group', '')}"
    if name != expected and not (not spec.get("group") and name == spec.get("version")):
        causes.append(_bad_value("metadata.name", name, 'must be `spec.version+"."+spec.group`'))
    if not spec.get("version"):
        causes.append(_required("spec.version"))
    if spec.get("service") is not None:
        for key, upper in (("groupPriorityMinimum", 20000), ("versionPriority", 1000)):
            value = spec.get(key)
            if not isinstance(value, int) or not 0 < value <= upper:
                causes.append(
                    _bad_value(f"spec.{key}", value, f"must be positive and less than {upper}")
                )
    return causes


def _validate_deployment(deployment: KubeObject) -> list[Cause]:
    causes = _validate_workload(deployment)
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") == "Recreate" and "rollingUpdate" in strategy:
        causes.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                "spec.strategy.rollingUpdate",
            )
        )
    if _is_zero(rolling.get("maxUnavailable")) and _is_zero(rolling.get("maxSurge")):
        causes.append(
            _bad_value(
                "spec.strategy.rollingUpdate.maxUnavailable",
                rolling.get("maxUnavailable"),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    for key in ("maxUnavailable", "maxSurge"):
        value = rolling.get(key)
        if isinstance(value, str) and not re.fullmatch(r"\d+%", value):
            causes.append(
                _bad_value(
                    f"spec.strategy.rollingUpdate.{key}",
                    value,
                    "a valid percent string must be a numeric string followed by an ending '%'",
                )
            )
    return causes


def _validate_hpa(hpa: KubeObject) -> list[Cause]:
    spec = hpa.get("spec") or {}
    causes = []
    minimum, maximum = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if maximum is None:
        causes.append(_required("spec.maxReplicas"))
    elif isinstance(minimum, int) and isinstance(maximum, int) and maximum < minimum:
        causes.append(
            _bad_value(
                "spec.maxReplicas", maximum, "must be greater than or equal to `minReplicas`"
            )
        )
    if isinstance(minimum, int) and minimum < 1:
        causes.append(_bad_value("spec.minReplicas", minimum, "must be greater than or equal to 1"))
    if not (spec.get("scaleTargetRef") or {}).get("name"):
        causes.append(_required("spec.scaleTargetRef.name"))
    return causes


def _validate_pdb(pdb: KubeObject) -> list[Cause]:
    spec = pdb.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        return [
            Cause(
                "FieldValueInvalid",
                "Invalid value: minAvailable and maxUnavailable cannot be both set",
                "spec",
            )
        ]
    return []


def _immutable(rt: ResourceType, new: KubeObject, old: KubeObject) -> list[Cause]:
    new_selector = (new.get("spec") or {}).get("selector")
    if rt.key == "batch/jobs":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        for key in ("selector", "template", "completionMode"):
            if new_spec.get(key) != old_spec.get(key):
                return [_bad_value(f"spec.{key}", new_spec.get(key), "field is immutable")]
    if rt.key in ("apps/deployments", "apps/replicasets") and new_selector != (
        old.get("spec") or {}
    ).get("selector"):
        return [_bad_value("spec.selector", new_selector, "field is immutable")]
    if rt.key == "pods":
        old_node = (old.get("spec") or {}).get("nodeName")
        if old_node and (new.get("spec") or {}).get("nodeName") != old_node:
            return [
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields "
                    "other than `spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                    "`spec.tolerations` (only additions to existing tolerations)",
                    "spec",
                )
            ]
    return []


def _selector_matches(selector: KubeObject, labels: dict[str, str]) -> bool:
    parsed = selector_from_match(selector)
    return parsed is not None and parsed.matches(labels)


def _is_zero(value: Any) -> bool:
    return value in (0, "0%", "0")


def pod_template_copy(template: KubeObject) -> KubeObject:
    return copy.deepcopy(template)


_DEFAULTERS: dict[str, Callable[[KubeObject], None]] = {
    "pods": _default_pod,
    "apps/deployments": _default_deployment,
    "apps/replicasets": _default_replicaset,
    "apps/daemonsets": _default_template,
    "apps/statefulsets": _default_replicaset,
    "services": _default_service,
    "autoscaling/horizontalpodautoscalers": _default_hpa,
    "policy/poddisruptionbudgets": _default_pdb,
    "replicationcontrollers": _default_rc,
    "batch/jobs": _default_job,
    "batch/cronjobs": _default_cronjob,
    "persistentvolumeclaims": storageadmission.default_claim,
    "persistentvolumes": storageadmission.default_volume,
    storageadmission.STORAGE_CLASSES: storageadmission.default_storage_class,
}


def _create_crd(crd: KubeObject, store: StoreView) -> None:
    crd["status"] = customresources.established_status(crd, rfc3339(store.clock.now()))


_WEBHOOKED = (chaoswebhook.NETWORKCHAOS_KEY, chaoswebhook.DNSCHAOS_KEY)
_CREATE_HOOKS: dict[str, Callable[[KubeObject, StoreView], None]] = {
    customresources.CRD_KEY: _create_crd,
    "pods": _create_pod,
    "namespaces": _create_namespace,
    "services": _create_service,
    "batch/jobs": _job_selector,
    "persistentvolumeclaims": _create_claim,
    "persistentvolumes": _create_volume,
}
_VALIDATORS: dict[str, Callable[[KubeObject], list[Cause]]] = {
    "pods": _validate_pod,
    "apps/deployments": _validate_deployment,
    "apps/replicasets": _validate_workload,
    "autoscaling/horizontalpodautoscalers": _validate_hpa,
    "policy/poddisruptionbudgets": _validate_pdb,
    "replicationcontrollers": _validate_rc,
    "batch/jobs": _validate_job,
    "apiregistration.k8s.io/apiservices": _validate_apiservice,
    "batch/cronjobs": _validate_cronjob,
    "persistentvolumeclaims": storageadmission.claim_causes,
    "persistentvolumes": storageadmission.volume_causes,
    storageadmission.STORAGE_CLASSES: storageadmission.storage_class_causes,
}

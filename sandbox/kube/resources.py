"""The resource types the emulator serves, as discovery lists them.

One table drives discovery, routing, the store and Table output, so that they
cannot disagree. Subresources are listed the way real API servers list them:
`pods/eviction` carries group `policy` and version `v1` (kubectl drain needs
that to use eviction), `deployments/scale` carries `autoscaling/v1`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.kube import customresources

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # set when it differs from the parent's, e.g. policy/v1 Eviction
    version: str | None = None


STATUS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    categories: tuple[str, ...] = ()
    # The server bumps metadata.generation when anything outside metadata/status changes.
    tracks_generation: bool = False
    list_kind: str = ""
    stored: bool = True  # False for virtual resources (metrics, subresource-only)
    # DELETE of an object removed at once answers the object rather than a Status
    # (sandbox/kube/deletion.py): upstream's registry sets `ReturnDeletedObject: true`,
    # which is also what makes the OpenAPI (and so the typed clients) expect the kind.
    # kubernetes/kubernetes pkg/registry/core/{namespace,pod,service,serviceaccount,
    # persistentvolume,persistentvolumeclaim}/storage/storage.go and
    # pkg/registry/storage/storageclass/storage/storage.go set it; none of the other
    # registries served here do (nor core/replicationcontroller, batch/job, batch/cronjob,
    # nor kube-aggregator's apiservice registry).
    returns_deleted_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """`apps/deployments`; core resources are just the plural (`pods`)."""
        return f"{self.group}/{self.plural}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return any(sub.name == "status" for sub in self.subresources)

    def subresource(self, name: str) -> Subresource | None:
        return next((sub for sub in self.subresources if sub.name == name), None)

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, STATUS)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", STATUS, group="autoscaling", version="v1")


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        (_status("Namespace"),),
        # REST.Delete answers the Namespace also while it is Terminating.
        returns_deleted_object=True,
    ),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), subresources=(_status("Node"),)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        subresources=(
            Subresource("attach", "PodAttachOptions", ("create", "get")),
            Subresource("eviction", "Eviction", ("create",), group="policy", version="v1"),
            Subresource("exec", "PodExecOptions", ("create", "get")),
            Subresource("log", "Pod", ("get",)),
            Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
            _status("Pod"),
        ),
        categories=("all",),
        returns_deleted_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        (_status("Service"),),
        categories=("all",),
        returns_deleted_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        True,
        ("rc",),
        subresources=(_scale(), _status("ReplicationController")),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",), list_kind="EndpointsList"),
    # Storage (sandbox/kube/controllers/persistentvolume.py binds and provisions them)
    ResourceType(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        False,
        ("pv",),
        subresources=(_status("PersistentVolume"),),
        returns_deleted_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        True,
        ("pvc",),
        subresources=(_status("PersistentVolumeClaim"),),
        returns_deleted_object=True,
    ),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        ("sa",),
        # TokenRequest (kubectl create token; sandbox/kube/auth/tokens.py)
        subresources=(
            Subresource(
                "token", "TokenRequest", ("create",), group="authentication.k8s.io", version="v1"
            ),
        ),
        returns_deleted_object=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        subresources=(_scale(), _status("Deployment")),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        subresources=(_scale(), _status("ReplicaSet")),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        ("ds",),
        subresources=(_status("DaemonSet"),),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        ("sts",),
        subresources=(_scale(), _status("StatefulSet")),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "Job",
        True,
        subresources=(_status("Job"),),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        True,
        ("cj",),
        subresources=(_status("CronJob"),),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        subresources=(_status("HorizontalPodAutoscaler"),),
        categories=("all",),
        tracks_generation=True,
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        ("pdb",),
        subresources=(_status("PodDisruptionBudget"),),
        tracks_generation=True,
    ),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        False,
        ("sc",),
        returns_deleted_object=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        True,
        ("ing",),
        subresources=(_status("Ingress"),),
        tracks_generation=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        ("netpol",),
        tracks_generation=True,
    ),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        False,
        subresources=(_status("APIService"),),
        categories=("api-extensions",),
    ),
    # RBAC objects are stored and served as upstream serves them, and the API server
    # enforces them (sandbox/kube/auth: RBAC, bootstrap roles, the review APIs below).
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
    ),
    # The review APIs: create-only, answered and never stored (sandbox/kube/auth/reviews.py).
    *(
        ResourceType(group, "v1", plural, kind, namespaced, verbs=("create",), stored=False)
        for group, plural, kind, namespaced in (
            ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
            ("authentication.k8s.io", "tokenreviews", "TokenReview", False),
            ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
            ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
        )
    ),
    # The sandbox serves only the CRDs it was built with (customresources.py): read-only.
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        READ_VERBS,
        (Subresource("status", "CustomResourceDefinition", READ_VERBS[:1]),),
        categories=("api-extensions",),
        tracks_generation=True,
    ),
    *(
        # Custom resources: names, scope and subresources as their CRD declares them.
        ResourceType(
            cr.group,
            cr.version,
            cr.plural,
            cr.kind,
            cr.namespaced,
            cr.short_names,
            subresources=(_status(cr.kind),) if cr.has_status else (),
            categories=cr.categories,
            tracks_generation=True,
            list_kind=cr.list_kind,
        )
        for cr in customresources.served()
    ),
    ResourceType(
        "metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, verbs=("get", "list"), stored=False
    ),
    ResourceType(
        "metrics.k8s.io",
        "v1beta1",
        "nodes",
        "NodeMetrics",
        False,
        verbs=("get", "list"),
        stored=False,
    ),
)

# events.k8s.io/v1 Events are a second view of the core Events (see store).
EVENTS_V1_KEY = "events.k8s.io/events"
CORE_EVENTS_KEY = "events"


def by_key(key: str) -> ResourceType:
    for resource in RESOURCES:
        if resource.key == key:
            return resource
    raise KeyError(key)


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def for_kind(api_version: str, kind: str) -> ResourceType | None:
    for resource in RESOURCES:
        if resource.api_version == api_version and resource.kind == kind and resource.stored:
            return resource
    return None


def group_versions() -> list[tuple[str, str]]:
    """Groups other than core, in discovery order, each with its one version."""
    seen: dict[str, str] = {}
    for resource in RESOURCES:
        if resource.group and resource.group not in seen:
            seen[resource.group] = resource.version
    return list(seen.items())


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


@dataclass(frozen=True)
class ObjectKey:
    resource: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.resource}:{where}{self.name}"


@dataclass(frozen=True)
class Paging:
    limit: int = 0
    continue_token: str = ""
    extra: dict[str, str] = field(default_factory=dict)

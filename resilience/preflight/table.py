"""The one table of Kubernetes permissions: what each activity, control, watch and suite
asks of the API server, read from its code.

Rows are `Uses` (see `preflight.permissions`): verbs on a resource (`pods/eviction` is
the eviction subresource), where (the activity's `namespace` argument unless said
otherwise), and, for a request by name, which name. An activity that journals an undo
needs the undo's permissions too (the rollback, or `resilience recover`, will make
those requests: better refused before the fault than after it).

Not here, on purpose:
- AWS (chaosaws, boto3, FIS): IAM, not RBAC; the preflight does not check it.
- Discovery and /version (interlocks, the dead-man switch, Chaos Mesh's "is it
  served?"): non-resource URLs every authenticated user may read
  (system:discovery, system:public-info-viewer).

Whatever an experiment uses that is not here is itself a preflight failure naming it,
so the table cannot silently fall behind the experiments (tests/preflight check every
experiment and plan in experiments/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from resilience.observe.records import ResourceKind
from resilience.preflight.permissions import (
    CHAOSK8S,
    CLUSTER,
    CONFIGURED,
    EVERY_NAMESPACE,
    ByArgument,
    Name,
    Uses,
    Where,
    uses,
)

APPS = "apps"
AUTOSCALING = "autoscaling"
CHAOS_MESH = "chaos-mesh.org"
DISCOVERY = "discovery.k8s.io"
NETWORKING = "networking.k8s.io"
POLICY = "policy"
AUTHORIZATION = "authorization.k8s.io"

# Provider modules that reach AWS only (boto3): nothing for RBAC to grant.
AWS_ONLY_PREFIXES: tuple[str, ...] = ("chaosaws.",)

CANARY = Name("name", "{deployment}-chaos-canary")
CHAOS_KIND = ByArgument(
    "kind", (("NetworkChaos", "networkchaos"), ("DNSChaos", "dnschaos")), "NetworkChaos"
)
# Chaos Mesh objects: selected pods in `namespaces` (else the experiment's namespace),
# the object itself in the first of them.
CHAOS_SELECTED = Where(arguments=("namespaces",))
CHAOS_OBJECT = Where(arguments=("namespaces",), first=True)
CHAOS_TARGETS = Where(arguments=("target.selector.namespaces", "namespaces"))
# drain_zone without a namespace: the pods of every namespace, as kubectl drain.
NAMESPACE_OR_EVERY = Where(configuration=None)

# resilience.chaos: our activities (resilience/chaos/*.py)
_PODS_KILL = (
    uses("list", "nodes", where=CLUSTER),  # pods.py _ready_pods_by_zone: zones of nodes
    uses("list get delete", "pods"),  # select, delete, and _absent's read
    uses("get", "deployments", APPS),  # probes.wait_deployment_whole
)
_ZONE_PODS = (
    uses("list", "nodes", where=CLUSTER),  # kube.nodes_in_zone
    uses("list", "pods", where=CONFIGURED),  # nodes.pods_on (budget); none: every namespace
)
_DEPLOYMENT_READ = (uses("get", "deployments", APPS),)
_ENDPOINTS = (uses("list", "endpointslices", DISCOVERY),)
_HPA_READ = (uses("get", "horizontalpodautoscalers", AUTOSCALING),)
_POD_LIST = (uses("list", "pods"),)
_CHAOS_MESH_PODS = (
    uses("list", "pods", where=CHAOS_SELECTED),  # chaosmesh._count_pods (blast radius)
    uses("list", "pods", where=CHAOS_TARGETS, when=("target",)),
)
_NOTHING: tuple[Uses, ...] = ()


def _chaos_object(plural: str) -> tuple[Uses, ...]:
    """A Chaos Mesh object created, and its journaled delete (`delete_journaled`: get it
    by name, delete it, get it until it is gone)."""
    return (
        uses("create", plural, CHAOS_MESH, where=CHAOS_OBJECT),
        uses("get delete", plural, CHAOS_MESH, where=CHAOS_OBJECT, name=Name("name")),
    )


ACTIVITIES: Mapping[str, tuple[Uses, ...]] = {
    "resilience.chaos.pods.kill_one_pod": _PODS_KILL,
    "resilience.chaos.pods.kill_one_pod_per_zone": _PODS_KILL,
    # nodes.py: cordon (patch), pods by node, Eviction API; uncordon is the undo
    "resilience.chaos.nodes.drain_zone": (
        uses("list patch", "nodes", where=CLUSTER),
        uses("list", "pods", where=NAMESPACE_OR_EVERY),
        uses("create", "pods/eviction", where=NAMESPACE_OR_EVERY),
    ),
    "resilience.chaos.nodes.uncordon_zone": (uses("list patch", "nodes", where=CLUSTER),),
    # deployments.py: a strategic-merge patch of the template; restore_image is the undo
    "resilience.chaos.deployments.set_image": (uses("get patch", "deployments", APPS),),
    "resilience.chaos.deployments.restore_image": (uses("patch", "deployments", APPS),),
    "resilience.chaos.deployments.rollout_seconds": _DEPLOYMENT_READ,
    "resilience.chaos.deployments.add_canary": (
        uses("get create", "deployments", APPS),
        uses("delete", "deployments", APPS, name=CANARY),  # the journaled undo
    ),
    "resilience.chaos.deployments.remove_canary": (
        uses("delete", "deployments", APPS, name=CANARY),
    ),
    "resilience.chaos.probes.cordoned_nodes": (uses("list", "nodes", where=CLUSTER),),
    "resilience.chaos.probes.deployment_is_whole": _DEPLOYMENT_READ,
    "resilience.chaos.probes.hpa_back_to_min_seconds": _HPA_READ,
    "resilience.chaos.probes.hpa_scaled_up_seconds": _HPA_READ,
    "resilience.chaos.probes.hpa_status": _HPA_READ,
    "resilience.chaos.probes.rds_available_seconds": _NOTHING,  # AWS
    "resilience.chaos.probes.rds_instance": _NOTHING,  # AWS
    "resilience.chaos.probes.ready_endpoints": _ENDPOINTS,
    "resilience.chaos.probes.ready_endpoints_at_least": _ENDPOINTS,
    "resilience.chaos.readiness.pods_leave_endpoints_seconds": _ENDPOINTS,
    "resilience.chaos.probes.restart_seconds": _POD_LIST,
    "resilience.chaos.probes.restarts_since_first_call": _POD_LIST,
    "resilience.chaos.probes.rollout_seconds": _DEPLOYMENT_READ,
    "resilience.chaos.probes.service_answers": _NOTHING,  # HTTP through the ingress
    "resilience.chaos.probes.service_answers_promptly": _NOTHING,
    "resilience.chaos.probes.time_to_recovery": _DEPLOYMENT_READ,
    # chaosmesh.py: create the object; its delete (get, then delete, then get until
    # gone) is journaled first, so it is the inject's need too
    "resilience.chaos.chaosmesh.inject_network_fault": (
        *_CHAOS_MESH_PODS,
        # _hosts_from_deployment: the service's env, for `targets_from_env`
        uses("get", "deployments", APPS, where=CHAOS_OBJECT, when=("targets_from_env",)),
        *_chaos_object("networkchaos"),
    ),
    "resilience.chaos.chaosmesh.inject_dns_fault": (
        *_CHAOS_MESH_PODS,
        uses("get", "deployments", APPS, where=CHAOS_OBJECT, when=("patterns_from_env",)),
        *_chaos_object("dnschaos"),
    ),
    # deletes what the run's injects journaled: their needs already cover it
    "resilience.chaos.chaosmesh.remove_chaos": _NOTHING,
    "resilience.chaos.chaosmesh_probes.chaos_mesh_condition_seconds": (
        uses("get", CHAOS_KIND, CHAOS_MESH, name=Name("name")),
    ),
    # zones.py / fis.py: EC2 and FIS, plus the blast radius from the zone's pods
    "resilience.chaos.zones.stop_zone_instances": _ZONE_PODS,
    "resilience.chaos.zones.start_zone_instances": _NOTHING,
    "resilience.chaos.fis.run_fis_experiment": tuple(
        Uses(u.verbs, u.resource, u.group, u.where, u.name, ("max_disrupted_pods",))
        for u in _ZONE_PODS  # fis.enforce_budget_for_zone: only with a declared budget
    ),
    "resilience.chaos.fis.stop_fis_experiments": _NOTHING,
    "resilience.chaos.brokers.stop_broker_nodes": _NOTHING,  # EC2
    "resilience.chaos.brokers.start_broker_nodes": _NOTHING,
    "resilience.chaos.broker_probes.broker_quorum_running": _NOTHING,
    "resilience.chaos.broker_probes.running_brokers": _NOTHING,
    "resilience.chaos.broker_probes.outbox_drained_seconds": _NOTHING,  # Prometheus
    "resilience.chaos.database.stop_db_instance": _NOTHING,  # RDS
    "resilience.chaos.database.start_db_instance": _NOTHING,
    "resilience.chaos.prometheus.alert_not_firing": _NOTHING,  # Prometheus's HTTP API
    "resilience.chaos.prometheus.alerts_firing": _NOTHING,
    "resilience.chaos.prometheus.query_value": _NOTHING,
    "resilience.chaos.prometheus.query_within": _NOTHING,
    "resilience.chaos.experiment_load.start_load": _NOTHING,  # Locust against the ingress
    "resilience.chaos.experiment_load.stop_load": _NOTHING,
    "resilience.chaos.experiment_load.load_slos_met": _NOTHING,
    "resilience.chaos.experiment_load.load_latency_as_injected": _NOTHING,
    "resilience.chaos.pace.hold": _NOTHING,
    # chaostoolkit-kubernetes 0.39 (chaosk8s/*): `ns` defaults to "default"
    "chaosk8s.pod.actions.terminate_pods": (uses("list delete", "pods", where=CHAOSK8S),),
    # a websocket GET (get pods/exec); create too since Kubernetes 1.35
    # (AuthorizePodWebsocketUpgradeCreatePermission, kubernetes/kubernetes#134577)
    "chaosk8s.pod.actions.exec_in_pods": (
        uses("list", "pods", where=CHAOSK8S),
        uses("get create", "pods/exec", where=CHAOSK8S),
    ),
    "chaosk8s.pod.probes.pods_in_phase": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.pods_not_in_phase": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.pods_in_conditions": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.count_pods": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.count_min_pods": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.pod_is_not_available": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.all_pods_healthy": (uses("list", "pods", where=CHAOSK8S),),
    "chaosk8s.pod.probes.read_pod_logs": (
        uses("list", "pods", where=CHAOSK8S),
        uses("get", "pods/log", where=CHAOSK8S),
    ),
    # node/actions.py: _select_nodes lists nodes (and pods of `pod_namespace` when
    # narrowed by `pod_label_selector`); drain lists, evicts and re-reads the pods of
    # every namespace, as kubectl drain does
    "chaosk8s.node.actions.drain_nodes": (
        uses("list patch", "nodes", where=CLUSTER),
        uses(
            "list",
            "pods",
            where=Where(arguments=("pod_namespace",), configuration=None),
            when=("pod_label_selector", "pod_namespace"),
        ),
        uses("list get", "pods", where=EVERY_NAMESPACE),
        uses("create", "pods/eviction", where=EVERY_NAMESPACE),
    ),
    "chaosk8s.node.actions.cordon_node": (uses("list patch", "nodes", where=CLUSTER),),
    "chaosk8s.node.actions.uncordon_node": (uses("list patch", "nodes", where=CLUSTER),),
    "chaosk8s.node.actions.delete_nodes": (
        uses("list delete", "nodes", where=CLUSTER),
        uses(
            "list",
            "pods",
            where=Where(arguments=("pod_namespace",), configuration=None),
            when=("pod_label_selector", "pod_namespace"),
        ),
    ),
    "chaosk8s.node.actions.create_node": (uses("create", "nodes", where=CLUSTER),),
    "chaosk8s.node.probes.get_nodes": (uses("list", "nodes", where=CLUSTER),),
    "chaosk8s.node.probes.get_all_node_status_conditions": (uses("list", "nodes", where=CLUSTER),),
    "chaosk8s.node.probes.all_nodes_must_be_ready_to_schedule": (
        uses("list", "nodes", where=CLUSTER),
    ),
    "chaosk8s.node.probes.verify_nodes_condition": (uses("list", "nodes", where=CLUSTER),),
    "chaosk8s.node.probes.nodes_must_be_healthy": (uses("list", "nodes", where=CLUSTER),),
    # deployment/actions.py: scale and rollout restart patch the Deployment itself
    "chaosk8s.deployment.actions.create_deployment": (
        uses("create", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.actions.delete_deployment": (
        uses("list delete", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.actions.scale_deployment": (
        uses("patch", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.actions.rollout_deployment": (
        uses("patch", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.probes.deployment_available_and_healthy": (
        uses("list", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.probes.deployment_partially_available": (
        uses("list", "deployments", APPS, where=CHAOSK8S),
    ),
    # a watch of the Deployments (list, then watch)
    "chaosk8s.deployment.probes.deployment_fully_available": (
        uses("list watch", "deployments", APPS, where=CHAOSK8S),
    ),
    "chaosk8s.deployment.probes.deployment_not_fully_available": (
        uses("list watch", "deployments", APPS, where=CHAOSK8S),
    ),
    # chaosmesh/*: chaosk8s.crd create/delete/get/list of namespaced custom objects
    **{
        f"chaosk8s.chaosmesh.network.actions.{action}": (
            uses("create", "networkchaos", CHAOS_MESH, where=CHAOSK8S),
        )
        for action in (
            "add_latency",
            "set_loss",
            "duplicate_packets",
            "corrupt_packets",
            "reorder_packets",
            "set_bandwidth",
        )
    },
    "chaosk8s.chaosmesh.network.actions.delete_network_fault": (
        uses("delete", "networkchaos", CHAOS_MESH, where=CHAOSK8S, name=Name("name")),
    ),
    "chaosk8s.chaosmesh.network.probes.get_network_faults": (
        uses("list", "networkchaos", CHAOS_MESH, where=CHAOSK8S),
    ),
    "chaosk8s.chaosmesh.network.probes.get_network_fault": (
        uses("get", "networkchaos", CHAOS_MESH, where=CHAOSK8S, name=Name("name")),
    ),
    "chaosk8s.chaosmesh.stress.actions.stress_cpu": (
        uses("create", "stresschaos", CHAOS_MESH, where=CHAOSK8S),
    ),
    "chaosk8s.chaosmesh.stress.actions.stress_memory": (
        uses("create", "stresschaos", CHAOS_MESH, where=CHAOSK8S),
    ),
    "chaosk8s.chaosmesh.stress.actions.delete_stressor": (
        uses("delete", "stresschaos", CHAOS_MESH, where=CHAOSK8S, name=Name("name")),
    ),
    "chaosk8s.chaosmesh.stress.probes.get_stressors": (
        uses("list", "stresschaos", CHAOS_MESH, where=CHAOSK8S),
    ),
    "chaosk8s.chaosmesh.stress.probes.get_stressor": (
        uses("get", "stresschaos", CHAOS_MESH, where=CHAOSK8S, name=Name("name")),
    ),
}

# Chaos Toolkit controls (resilience/chaos/controls/*): /version, Prometheus, CloudWatch,
# signals and files only. The runner adds dead-man and stop-conditions to every run.
CONTROLS: Mapping[str, tuple[Uses, ...]] = {
    "resilience.chaos.controls.interlocks": _NOTHING,  # kubeconfig, GET /version
    "resilience.chaos.controls.interrupts": _NOTHING,
    "resilience.chaos.controls.journal": _NOTHING,
    "resilience.chaos.controls.fault_windows": _NOTHING,
    "resilience.chaos.controls.dead_man": _NOTHING,  # GET /version, AWS, Prometheus
    "resilience.chaos.controls.stop_conditions": _NOTHING,  # Prometheus, CloudWatch
}

# resilience/observe watches: a LIST, then a WATCH from its resourceVersion.
_WATCH = "list watch"
WATCHES: Mapping[ResourceKind, Uses] = {
    ResourceKind.POD: uses(_WATCH, "pods", where=CONFIGURED),
    ResourceKind.REPLICASET: uses(_WATCH, "replicasets", APPS, where=CONFIGURED),
    ResourceKind.DEPLOYMENT: uses(_WATCH, "deployments", APPS, where=CONFIGURED),
    ResourceKind.ENDPOINTSLICE: uses(_WATCH, "endpointslices", DISCOVERY, where=CONFIGURED),
    ResourceKind.HPA: uses(_WATCH, "horizontalpodautoscalers", AUTOSCALING, where=CONFIGURED),
    ResourceKind.PDB: uses(_WATCH, "poddisruptionbudgets", POLICY, where=CONFIGURED),
    ResourceKind.NODE: uses(_WATCH, "nodes", where=CLUSTER),
    ResourceKind.EVENT: uses(_WATCH, "events", where=CONFIGURED),
}


# resilience.load.cluster_run (certify --on-cluster, gameday --load-on-cluster), in the
# load's namespace: the namespace created if missing; deploy/locust's objects created,
# listed by their run label and deleted; the master's log read, `cat` exec'd in it and
# its web UI port-forwarded; the pods listed until they are gone. exec and port-forward
# are websocket GETs, and need create too since Kubernetes 1.35 (as exec_in_pods above).
ON_CLUSTER_LOAD: tuple[Uses, ...] = (
    uses("create", "namespaces", where=CLUSTER),
    uses("create list delete", "configmaps", where=CONFIGURED),
    uses("create list delete", "services", where=CONFIGURED),
    uses("create list delete", "deployments", APPS, where=CONFIGURED),
    uses("list", "pods", where=CONFIGURED),
    uses("get", "pods/log", where=CONFIGURED),
    uses("get create", "pods/exec", where=CONFIGURED),
    uses("get create", "pods/portforward", where=CONFIGURED),
)


@dataclass(frozen=True)
class Calls:
    """A suite calling one of the activities above, with these arguments
    (`${namespace}`: the suite's namespace)."""

    activity: str
    arguments: tuple[tuple[str, str], ...] = ()


def calls(activity: str, **arguments: str) -> Calls:
    return Calls(activity, tuple(sorted(arguments.items())))


SuiteRow: TypeAlias = Uses | Calls
_IN_TARGET = "${namespace}"
# kubectl rollout status deploy/X: GET it, then LIST and WATCH by metadata.name
_ROLLOUT_STATUS = (uses("get list watch", "deployments", APPS, where=CONFIGURED),)
_DEPLOYMENT_EDIT = (uses("get patch", "deployments", APPS, where=CONFIGURED),)
_DRAIN_AND_UNCORDON = (
    calls("resilience.chaos.nodes.drain_zone", namespace=_IN_TARGET),
    calls("resilience.chaos.nodes.uncordon_zone"),
)

# Fixtures of suites/conftest.py, by the name a test asks for (and `destructive`, the
# marker whose snapshot and restore run around the test).
SUITE_FIXTURES: Mapping[str, tuple[SuiteRow, ...]] = {
    # steady_target (autouse on `resilience` tests): targets.live.current_problems
    "steady_target": (
        uses("get list", "deployments", APPS, where=CONFIGURED),  # it, and canaries left
        uses("list", "nodes", where=CLUSTER),
        uses("list", "pods", where=CONFIGURED),
        uses("list", "endpointslices", DISCOVERY, where=CONFIGURED),
    ),
    # take_snapshot / restore: the Deployment replaced (PUT), PDBs deleted and created,
    # canaries deleted with their pods
    "destructive": (
        uses("get update list delete", "deployments", APPS, where=CONFIGURED),
        uses("list create delete", "poddisruptionbudgets", POLICY, where=CONFIGURED),
        uses("list delete", "pods", where=CONFIGURED),
    ),
    # `monitors`: the watches of MonitorScope.for_policy, derived from WATCHES by `needs`
    "monitors": (),
}

# Test bodies of the resilience suites, by module (their fixtures come from above).
SUITES: Mapping[str, tuple[SuiteRow, ...]] = {
    "suites.test_alerts": (
        *_DEPLOYMENT_EDIT,  # set_fault
        uses("list delete", "poddisruptionbudgets", POLICY, where=CONFIGURED),
        *_DRAIN_AND_UNCORDON,
    ),
    "suites.test_az_drain": (
        uses("get", "deployments", APPS, where=CONFIGURED),
        uses("list", "poddisruptionbudgets", POLICY, where=CONFIGURED),
        *_DRAIN_AND_UNCORDON,
    ),
    "suites.test_broker": (*_DEPLOYMENT_EDIT, *_ROLLOUT_STATUS),  # EC2 brokers: IAM
    "suites.test_hpa": (
        uses("get", "horizontalpodautoscalers", AUTOSCALING, where=CONFIGURED),
        calls("resilience.chaos.deployments.set_image", namespace=_IN_TARGET),
        calls("resilience.chaos.deployments.restore_image", namespace=_IN_TARGET),
        calls("resilience.chaos.deployments.rollout_seconds", namespace=_IN_TARGET),
    ),
    "suites.test_network_policies": (
        uses("list", "networkpolicies", NETWORKING, where=CONFIGURED),
    ),
    "suites.test_pod_kill": (calls("resilience.chaos.pods.kill_one_pod", namespace=_IN_TARGET),),
    # canaries: created from the live template, read, deleted with their pods; RDS: IAM
    "suites.test_probes": (
        uses("get create delete", "deployments", APPS, where=CONFIGURED),
        uses("get list delete", "pods", where=CONFIGURED),
    ),
    "suites.test_rds_failover": _NOTHING,  # boto3, and the monitors fixture
    # kubectl rollout undo: GET the Deployment, LIST its ReplicaSets, PATCH the template
    "suites.test_rolling_update": (
        *_DEPLOYMENT_EDIT,
        uses("list", "replicasets", APPS, where=CONFIGURED),
        *_ROLLOUT_STATUS,
    ),
    # the storm: a pod kill; rebalancing: the HPA's minReplicas raised and put back, and
    # optionally the release under test rolled out; sockets per pod come from Prometheus
    "suites.test_ws_storm": (
        calls("resilience.chaos.pods.kill_one_pod", namespace=_IN_TARGET),
        uses("patch", "horizontalpodautoscalers", AUTOSCALING, where=CONFIGURED),
        calls("resilience.chaos.deployments.set_image", namespace=_IN_TARGET),
        calls("resilience.chaos.deployments.restore_image", namespace=_IN_TARGET),
        calls("resilience.chaos.deployments.rollout_seconds", namespace=_IN_TARGET),
    ),
}

# What asking needs: SelfSubjectAccessReview (system:basic-user grants it to everyone).
REVIEW = uses("create", "selfsubjectaccessreviews", AUTHORIZATION, where=CLUSTER)

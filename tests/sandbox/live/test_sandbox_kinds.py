"""The added kinds and public-image stand-ins through the typed client on a SandboxHarness."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.request import urlopen

from kubernetes import client, utils

from tests.sandbox.cluster_harness import SandboxHarness, wait_for

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27", ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: pause}
spec:
  replicas: 2
  selector: {app: pause}
  template:
    metadata: {labels: {app: pause}}
    spec:
      containers: [{name: pause, image: "registry.k8s.io/pause:3.10"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: hello}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox:1.36
        command: [sh, -c, 'echo hello from $HOSTNAME && exit 0']
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.custom.example.com}
spec:
  group: custom.example.com
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 10
  service: {name: custom-api, namespace: default, port: 443}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
"""


def test_create_from_yaml_serves_every_kind_and_their_controllers_act(
    sandbox: SandboxHarness, tmp_path: Path
) -> None:
    namespace = sandbox.new_namespace()
    api = sandbox.api_client()
    manifest = tmp_path / "all.yaml"
    manifest.write_text(MANIFEST.replace("namespace: default", f"namespace: {namespace}"))
    created = utils.create_from_yaml(api, str(manifest), namespace=namespace)
    kinds = [obj.kind for group in created for obj in group]
    assert kinds == [
        "Deployment",
        "Service",
        "ReplicationController",
        "Job",
        "APIService",
        "Role",
        "RoleBinding",
    ]
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_namespaced_role("pod-reader", namespace)
    assert role.rules[0].resources == ["pods"] and role.rules[0].verbs == ["get", "list", "watch"]
    binding = rbac.read_namespaced_role_binding("read-pods", namespace)
    assert binding.role_ref.name == "pod-reader"
    rbac.delete_namespaced_role_binding("read-pods", namespace)  # a Status the client reads
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    registration = client.ApiregistrationV1Api(api)

    job = wait_for(
        lambda: (
            (j := batch.read_namespaced_job("hello", namespace)).status.succeeded == 2
            and j.status.completion_time
            and j
        ),
        60,
        "job hello complete",
    )
    assert [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert len(pods) == 2 and {p.status.phase for p in pods} == {"Succeeded"}
    log = core.read_namespaced_pod_log(pods[0].metadata.name, namespace)
    assert log == f"hello from {pods[0].metadata.name}\n"

    rc = wait_for(
        lambda: (
            (r := core.read_namespaced_replication_controller("pause", namespace)).status
            and r.status.ready_replicas == 2
            and r
        ),
        60,
        "rc pause ready",
    )
    assert rc.status.replicas == 2 and rc.status.observed_generation == 1
    scale = core.read_namespaced_replication_controller_scale("pause", namespace)
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=pause")

    web = wait_for(
        lambda: [
            p
            for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
            if p.status.pod_ip and any(c.ready for c in p.status.container_statuses or [])
        ],
        60,
        "nginx pod ready",
    )
    with urlopen(f"http://{web[0].status.pod_ip}:80/", timeout=5) as response:
        assert b"Welcome to nginx!" in response.read()

    apiservice = wait_for(
        lambda: (
            (a := registration.read_api_service("v1beta1.custom.example.com")).status
            and a.status.conditions
            and a
        ),
        30,
        "APIService status",
    )
    condition = apiservice.status.conditions[0]
    assert (condition.type, condition.status, condition.reason) == (
        "Available",
        "False",
        "ServiceNotFound",
    )

    answers: list[Any] = [
        batch.delete_namespaced_job("hello", namespace, propagation_policy="Background"),
        core.delete_namespaced_replication_controller("pause", namespace),
        registration.delete_api_service("v1beta1.custom.example.com"),
    ]
    assert [(a["kind"], a["status"]) for a in answers] == [("Status", "Success")] * 3
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=pause").items,
        60,
        "rc pods collected",
    )


def test_busybox_pod_fails_with_exit_code_and_logs(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    core = client.CoreV1Api(sandbox.api_client())
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "bb"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "bb", "image": "busybox", "command": ["sh", "-c", "echo hi; exit 3"]}
                ],
            },
        },
    )
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("bb", namespace)).status.phase == "Failed" and p,
        60,
        "bb Failed",
    )
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    assert core.read_namespaced_pod_log("bb", namespace) == "hi\n"
    assert sandbox.kubectl("logs", "-n", namespace, "bb").stdout == "hi\n"

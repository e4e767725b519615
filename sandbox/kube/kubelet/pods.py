"""One pod's life on its node: sandbox (IP), containers, status, termination, removal.

The pod worker owns the pod's `ContainerWorker`s and is the only writer of
the pod's status (always via the `status` subresource, read fresh first,
skipped when unchanged). When `deletionTimestamp` appears it stops every
container within the grace period (counted from when it saw the deletion),
writes the terminal phase and removes the object with grace 0.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.images.registry import ImageNotFoundError
from sandbox.kube.clock import parse_time
from sandbox.kube.errors import ApiError
from sandbox.kube.kubelet.containers import ContainerWorker, remove_new_roots
from sandbox.kube.kubelet.context import NodeContext
from sandbox.kube.kubelet.dns import dns_type, render_resolv_conf, resolv_conf_path
from sandbox.kube.kubelet.env import PodFacts
from sandbox.kube.kubelet.ipam import AddressesExhaustedError
from sandbox.kube.kubelet.mounts import VolumeSource
from sandbox.kube.kubelet.runtime import MIN_GRACE_SECONDS, Deadline
from sandbox.kube.kubelet.serviceaccount import TokenSource, pod_token_source, refresh_after
from sandbox.kube.kubelet.status import (
    ContainerRecord,
    PodRuntime,
    Terminated,
    build_pod_status,
)
from sandbox.kube.kubelet.volumefs import (
    refresh_volume,
    remove_volumes,
    volume_dir,
    write_volumes,
)
from sandbox.kube.kubelet.volumes import (
    MountVolumeError,
    VolumePlan,
    mount_retry_delay,
    plan_pod_volumes,
    plan_volume,
)
from sandbox.kube.podlogs import pod_dir

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
SANDBOX_RETRY_SECONDS = 10.0
EXIT_CODE_AFTER_REBOOT = 255


def initial_record(
    container: KubeObject, previous: KubeObject | None, rebooted_at: datetime | None
) -> ContainerRecord:
    """A container's record when the worker starts; after a reboot the old container is dead."""
    record = ContainerRecord(name=container["name"], image=str(container.get("image", "")))
    if previous is None or rebooted_at is None:
        return record
    running = (previous.get("state") or {}).get("running")
    if running is None and not previous.get("containerID"):
        return record
    started = parse_time(running["startedAt"]) if running else None
    dead = Terminated(
        EXIT_CODE_AFTER_REBOOT,
        "Unknown",
        rebooted_at,
        started,
        container_id=previous.get("containerID", ""),
    )
    return ContainerRecord(
        record.name,
        record.image,
        previous.get("imageID", ""),
        previous.get("containerID", ""),
        record.state,
        dead,
        restart_count=int(previous.get("restartCount", 0)),
    )


def grace_seconds(pod: KubeObject | None) -> float:
    """The grace period to stop with: the deletion's, or the minimum when the pod is gone."""
    if pod is None:
        return MIN_GRACE_SECONDS
    metadata = pod["metadata"]
    grace = metadata.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
    return float(grace)


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: KubeObject, rebooted_at: datetime | None = None):
        self.ctx, self.pod = ctx, pod
        metadata = pod["metadata"]
        self.uid, self.namespace, self.name = (
            metadata["uid"],
            metadata["namespace"],
            metadata["name"],
        )
        self.pod_ip = ""
        self.resolv_conf: Path | None = None  # None: the host's /etc/resolv.conf
        self.cgroup_procs: Path | None = None  # None: no cgroup of its own
        self.volumes: dict[str, VolumeSource | None] = {}  # None: not materialized
        self.token_volumes: tuple[VolumePlan, ...] = ()  # those with service-account tokens
        self.tokens_issued_at = 0.0  # loop time of the volumes' set-up
        self.sandbox_ready = False
        self.terminal = False
        self.removed = False  # the API object is gone
        self.deadline: Deadline | None = None
        self.stop_requested = asyncio.Event()
        self.start_time = ctx.clock.now()
        previous = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        self.containers = [
            ContainerWorker(self, c, initial_record(c, previous.get(c["name"]), rebooted_at))
            for c in pod.get("spec", {}).get("containers") or []
        ]

    # ---- what the kubelet tells it ----

    def observe(self, pod: KubeObject | None) -> None:
        """The latest pod object, or None once it has left the store."""
        if pod is None:
            self.removed = True
        else:
            self.pod = pod
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.request_termination(grace_seconds(pod))

    def request_termination(self, grace: float) -> None:
        when = self.ctx.monotonic() + grace
        if self.deadline is None:
            self.deadline = Deadline(when)
            self.stop_requested.set()
            for container in self.containers:
                container.request_stop(self.deadline)
        else:
            self.deadline.shorten(when)

    @property
    def deleting(self) -> bool:
        return self.stop_requested.is_set()

    # ---- the lifecycle ----

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        refresher: asyncio.Task[None] | None = None
        try:
            if await self._set_up_volumes() and await self._create_sandbox():
                if self.token_volumes:
                    refresher = asyncio.ensure_future(self._refresh_tokens())
                tasks = [asyncio.ensure_future(c.run()) for c in self.containers]
                await self._until_stopped_or_completed(tasks)
            await self._terminate(tasks)
        finally:
            for task in [*tasks, *([refresher] if refresher is not None else [])]:
                task.cancel()
            self._kill_everything()
            if self.terminal or self.removed:
                remove_volumes(self._directory())
                remove_new_roots(self.ctx.state_dir, self.namespace, self.name, self.uid)
            if self.cgroup_procs is not None and self.ctx.cgroups is not None:
                await self.ctx.cgroups.remove(self.uid)

    async def _set_up_volumes(self) -> bool:
        """Every volume of the pod, before its sandbox and containers (upstream syncPod's
        WaitForAttachAndMount); False when the pod was deleted meanwhile.

        A volume that cannot be set up (a missing ConfigMap, say) is a FailedMount event
        each try, retried with the volume manager's back-off; the pod stays Pending with
        its containers ContainerCreating until it can be.
        """
        volumes = (self.pod.get("spec") or {}).get("volumes") or []
        virtual = all(self._is_virtual(c) for c in self.pod.get("spec", {}).get("containers") or [])
        failures = 0
        while not self.deleting:
            planned = plan_pod_volumes(volumes, self._lookup, self.facts(), self._tokens())
            errors = list(planned.errors)
            written: dict[str, VolumeSource] = {}
            if not errors and not virtual:  # a virtual pod's containers mount nothing
                written, errors = write_volumes(
                    self._directory(), planned.plans, self.ctx.clock.now()
                )
            if not errors:
                # a virtual pod's volumes are planned (their errors count) but mounted nowhere
                unmounted = [p.name for p in planned.plans if virtual] + list(planned.skipped)
                self.volumes = {**written, **dict.fromkeys(unmounted)}
                self.token_volumes = tuple(
                    plan for plan in planned.plans if plan.token_seconds and plan.name in written
                )
                self.tokens_issued_at = self.ctx.monotonic()
                return True
            for error in errors:
                self.event("FailedMount", str(error), warning=True)
            self.publish()
            failures += 1
            if not await self._wait_for_stop(mount_retry_delay(failures)):
                return False
        return False

    def _lookup(self, resource: str, name: str) -> KubeObject | None:
        namespace = "" if resource == "persistentvolumes" else self.namespace  # cluster-scoped
        return self.ctx.store.find(resource, namespace, name)

    def _tokens(self) -> TokenSource | None:
        issuer = self.ctx.token_issuer
        if issuer is None:
            return None
        account = self.facts().service_account
        return pod_token_source(issuer, self.namespace, account, self.name, self.uid)

    async def _refresh_tokens(self) -> None:
        """The token manager: each volume with a service-account token set up again (the
        token file replaced atomically) once 80 % of its token's lifetime has passed; a
        failure is a FailedMount event, retried with the volume manager's back-off while
        the old token stays in place."""
        issued = self.tokens_issued_at
        due = {p.name: issued + refresh_after(p.token_seconds) for p in self.token_volumes}
        specs = {
            str(v.get("name", "")): v for v in (self.pod.get("spec") or {}).get("volumes") or []
        }
        failures = 0
        while due:
            name = min(due, key=due.__getitem__)
            if not await self._wait_for_stop(max(0.0, due[name] - self.ctx.monotonic())):
                return
            try:
                plan = plan_volume(specs[name], self._lookup, self.facts(), self._tokens())
                if plan is None:
                    return  # the issuer went away: keep what is there
                refresh_volume(volume_dir(self._directory(), plan), plan, self.ctx.clock.now())
            except (MountVolumeError, OSError) as error:
                self.event("FailedMount", f"{error}", warning=True)
                failures += 1
                due[name] = self.ctx.monotonic() + mount_retry_delay(failures)
                continue
            failures = 0
            due[name] = self.ctx.monotonic() + refresh_after(plan.token_seconds)

    def _directory(self) -> Path:
        return pod_dir(self.ctx.state_dir, self.namespace, self.name, self.uid)

    async def _create_sandbox(self) -> bool:
        virtual = all(self._is_virtual(c) for c in self.pod.get("spec", {}).get("containers") or [])
        while not self.deleting:
            try:
                self.pod_ip = self.ctx.ipam.allocate(self.uid, virtual=virtual)
            except AddressesExhaustedError as error:
                self.event(
                    "FailedCreatePodSandBox", f"Failed to create pod sandbox: {error}", warning=True
                )
                self.publish()
                if not await self._wait_for_stop(SANDBOX_RETRY_SECONDS):
                    return False
                continue
            if not virtual and not (self._write_resolv_conf() and self._create_cgroup()):
                self.ctx.ipam.release(self.uid)
                if not await self._wait_for_stop(SANDBOX_RETRY_SECONDS):
                    return False
                continue
            self.sandbox_ready = True
            self.publish()
            return True
        return False

    def _write_resolv_conf(self) -> bool:
        """Write the pod's resolv.conf where its containers will see it (RunPodSandbox does)."""
        spec, settings = self.pod.get("spec") or {}, self.ctx.settings
        if dns_type(spec) == "cluster" and not settings.cluster_dns:
            self.event(
                "MissingClusterDNS",
                "pod: kubelet does not have ClusterDNS IP configured and cannot create Pod"
                ' using "ClusterFirst" policy. Falling back to "Default" policy.',
                warning=True,
            )
        content = render_resolv_conf(
            spec, self.namespace, settings.cluster_dns, settings.cluster_domain
        )
        if content is None:
            self.resolv_conf = None
            return True
        path = resolv_conf_path(self.ctx.state_dir, self.namespace, self.name, self.uid)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        except OSError as error:
            self.event(
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: writing {path}: {error}",
                warning=True,
            )
            self.publish()
            return False
        self.resolv_conf = path
        return True

    def _create_cgroup(self) -> bool:
        """The pod's cgroup, which its processes join (RunPodSandbox creates the pod's)."""
        cgroups = self.ctx.cgroups
        if cgroups is None:
            return True
        try:
            cgroups.create(self.uid)
        except OSError as error:
            self.event(
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: cgroup {cgroups.pod_dir(self.uid)}: {error}",
                warning=True,
            )
            self.publish()
            return False
        self.cgroup_procs = cgroups.procs(self.uid)
        return True

    def _is_virtual(self, container: KubeObject) -> bool:
        try:
            return self.ctx.images.lookup(str(container.get("image", ""))).virtual
        except ImageNotFoundError:
            return False

    async def _until_stopped_or_completed(self, tasks: list[asyncio.Task[None]]) -> None:
        stop = asyncio.ensure_future(self.stop_requested.wait())
        all_done = asyncio.ensure_future(asyncio.wait(tasks))
        try:
            await asyncio.wait([stop, all_done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            all_done.cancel()
        if not self.deleting:
            self._completed()
            await self.stop_requested.wait()

    def _completed(self) -> None:
        """Every container has exited for good (restartPolicy Never/OnFailure): a terminal phase."""
        self.sandbox_ready = False
        self.publish()
        self.ctx.ipam.release(self.uid)

    async def _terminate(self, tasks: list[asyncio.Task[None]]) -> None:
        if tasks:
            await asyncio.wait(tasks)
        self.terminal, self.sandbox_ready = True, False
        self.publish()
        self.ctx.ipam.release(self.uid)
        self.ctx.metrics.forget_pod(self.namespace, self.name)
        self._remove_object()

    def _remove_object(self) -> None:
        if self.removed or not self.ctx.powered:
            return
        try:
            self.ctx.store.delete(
                "pods", self.namespace, self.name, grace_period_seconds=0, uid=self.uid
            )
        except ApiError as error:
            log.debug("pod %s/%s already gone: %s", self.namespace, self.name, error)

    def _kill_everything(self) -> None:
        for container in self.containers:
            if container.handle is not None:
                container.handle.kill()

    async def _wait_for_stop(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.stop_requested.wait()
        except TimeoutError:
            return True
        return False

    # ---- status and events ----

    def runtime(self) -> PodRuntime:
        return PodRuntime(
            tuple(c.record for c in self.containers),
            self.ctx.config.internal_ip,
            self.pod_ip,
            self.start_time,
            self.sandbox_ready,
            self.terminal,
        )

    def publish(self) -> None:
        """Write the pod's status if it changed (never while the node is off)."""
        if not self.ctx.powered or self.removed:
            return
        pod = self.ctx.store.find("pods", self.namespace, self.name)
        if pod is None or pod["metadata"].get("uid") != self.uid:
            return
        status = build_pod_status(pod, self.runtime(), self.ctx.clock.now())
        if status == pod.get("status"):
            return
        pod["status"] = status
        self.pod = self.ctx.store.update("pods", pod, subresource="status")

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.ctx.event(self.pod, reason, message, warning)

    def facts(self) -> PodFacts:
        metadata = self.pod["metadata"]
        return PodFacts(
            self.name,
            self.namespace,
            self.uid,
            self.ctx.config.name,
            self.pod_ip,
            self.ctx.config.internal_ip,
            self.pod.get("spec", {}).get("serviceAccountName", "default"),
            metadata.get("labels") or {},
            metadata.get("annotations") or {},
        )

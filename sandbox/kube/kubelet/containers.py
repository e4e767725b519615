"""One container's life on the node: pull, start, probe, restart with back-off, stop.

A `ContainerWorker` runs a loop per container of a pod: pull the image (or
show `ErrImagePull` / `ImagePullBackOff`), resolve the environment, start the
process, supervise it until it exits, a liveness or startup probe fails (kill
and restart) or the pod is deleted (graceful stop), then apply the
restartPolicy with CrashLoopBackOff. Probe workers for the container run
beside the loop and outlive restarts, as upstream. Every state change is
recorded in `self.record` and published through the pod worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from sandbox.images.registry import REPO_ROOT, ImageNotFoundError, ImageSpec, normalize
from sandbox.kube.goduration import format_go_duration
from sandbox.kube.kubelet import backoff, probes
from sandbox.kube.kubelet.context import NodeContext
from sandbox.kube.kubelet.env import (
    MASTER_SERVICE,
    EnvConfigError,
    PodFacts,
    expand,
    master_service_env,
    resolve_env,
)
from sandbox.kube.kubelet.mounts import (
    ContainerRoot,
    ImageBind,
    VolumeMount,
    VolumeSource,
    container_mounts,
    plan_mounts,
)
from sandbox.kube.kubelet.probe_runners import ProbeTarget, run_probe
from sandbox.kube.kubelet.probes import ProbeType, Result
from sandbox.kube.kubelet.runtime import (
    ContainerHandle,
    Deadline,
    VirtualContainer,
    start_process,
    stop_gracefully,
)
from sandbox.kube.kubelet.status import ContainerRecord, Running, Terminated, Waiting, exit_reason
from sandbox.kube.kubelet.volumefs import LocalHost, prepare
from sandbox.kube.podlogs import log_file, pod_dir

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
PreStop = Callable[[float], Awaitable[None]]


class PodHost(Protocol):
    """What a container worker needs from its pod worker."""

    ctx: NodeContext
    pod: KubeObject
    pod_ip: str
    resolv_conf: Path | None  # mounted at /etc/resolv.conf; None: the host's
    cgroup_procs: Path | None  # the pod's cgroup, joined by its processes; None: none
    volumes: dict[str, VolumeSource | None]  # the pod's volumes; None: not materialized

    @property
    def deleting(self) -> bool: ...

    def publish(self) -> None: ...

    def event(self, reason: str, message: str, warning: bool = False) -> None: ...

    def facts(self) -> PodFacts: ...


def standin_root(state_dir: Path, namespace: str, pod: str, uid: str) -> Path:
    """A stand-in's own directory, the only files its `cat` sees: `/etc/hostname` so far.

    Outside `<state>/pods/` so that the log reader never takes it for a container.
    """
    root = state_dir / "rootfs" / f"{namespace}_{pod}_{uid}"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hostname").write_text(f"{pod}\n")
    return root


def new_root_dir(state_dir: Path, namespace: str, pod: str, uid: str, container: str) -> Path:
    """The empty directory a real-process container's root (a tmpfs) is mounted on, in the
    container's namespace only: on the host it stays empty (`mounts.ContainerRoot`)."""
    return state_dir / "roots" / f"{namespace}_{pod}_{uid}" / container


def remove_new_roots(state_dir: Path, namespace: str, pod: str, uid: str) -> None:
    """The pod's new-root directories, once its containers are gone: empty on the host, so
    only rmdir (anything left in them would be a bug to see, not to delete)."""
    pod_roots = new_root_dir(state_dir, namespace, pod, uid, "_").parent
    with contextlib.suppress(FileNotFoundError):
        for directory in pod_roots.iterdir():
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            pod_roots.rmdir()


# What a real-process image runs from: the sandbox's interpreter (its venv and the Python
# it was made from) and the project whose packages the images import.
RUNTIME = (Path(sys.prefix), Path(sys.base_prefix), REPO_ROOT)


def working_dir(spec: Mapping[str, Any], image: ImageSpec) -> str | None:
    """Where the process starts, in its own root: the container's `workingDir`, else the
    image's WORKDIR, else `/` (runc's default), made there when missing; None for a
    stand-in, whose files are its own directory whatever the spec says.
    """
    if image.standin:
        return None
    return str(spec.get("workingDir") or image.workdir or "/")


def container_root(
    spec: Mapping[str, Any], image: ImageSpec, at: Path, workdir: str
) -> ContainerRoot:
    """The root a real-process container gets: the image's own files and
    `securityContext.readOnlyRootFilesystem` honoured (`mounts.py`)."""
    security = spec.get("securityContext") or {}
    return ContainerRoot(
        at,
        tuple(ImageBind(path, Path(source)) for path, source in image.content),
        workdir,
        bool(security.get("readOnlyRootFilesystem")),
        RUNTIME,
    )


def should_restart(restart_policy: str, exit_code: int, probe_killed: bool) -> bool:
    """After a liveness/startup kill only Never stops it; else Always, or OnFailure on error."""
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return probe_killed or exit_code != 0
    return False


def next_tick(previous: float, period: float, now: float) -> float:
    """A Go ticker: every `period` from the first tick; a tick missed while probing fires now."""
    upcoming = previous + period
    return upcoming if upcoming > now else now


def readiness_of(record: ContainerRecord, has_probe: bool, result: Result | None) -> bool:
    running = isinstance(record.state, Running)
    return running and record.started and (not has_probe or result is Result.SUCCESS)


class ContainerWorker:
    def __init__(self, host: PodHost, spec: Mapping[str, Any], record: ContainerRecord) -> None:
        self.host, self.spec, self.name = host, spec, str(spec["name"])
        self.ctx = host.ctx
        self.record = record
        self.handle: ContainerHandle | None = None
        self.virtual = False
        self.finished = asyncio.Event()  # will not run again (restartPolicy) or stopped
        self.stop_requested = asyncio.Event()
        self.pod_deadline: Deadline | None = None
        self.kill_deadline: Deadline | None = None
        self.probe_kill = asyncio.Event()
        self.probe_kill_type = ProbeType.LIVENESS
        self.probe_kill_message = ""
        self.results: dict[ProbeType, tuple[str, Result]] = {}
        self.readiness_trigger = asyncio.Event()
        self.restart_entry: backoff.BackoffEntry | None = None
        self._probe_tasks: list[asyncio.Task[None]] = []

    # ---- the loop ----

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            for task in self._probe_tasks:
                task.cancel()
            self.finished.set()

    async def _loop(self) -> None:
        while not self.stop_requested.is_set():
            image = await self._pull()
            config = await self._config() if image is not None else None
            if image is None or config is None:
                return
            self._start_probes(image)
            handle = await self._start(image, *config)
            probe_killed = await self._supervise(handle) if handle is not None else False
            if self.stop_requested.is_set():
                return
            code = self.record.state.exit_code if isinstance(self.record.state, Terminated) else 1
            if not should_restart(self._restart_policy(), code, probe_killed):
                return
            if not await self._back_off():
                return

    def request_stop(self, deadline: Deadline) -> None:
        """The pod is being deleted: stop by `deadline`, never restart."""
        self.pod_deadline = deadline
        self.stop_requested.set()
        if self.kill_deadline is not None:
            self.kill_deadline.shorten(deadline.when)

    # ---- pull, environment, start ----

    async def _pull(self) -> ImageSpec | None:
        reference = str(self.spec.get("image", ""))
        entry: backoff.BackoffEntry | None = None
        while not self.stop_requested.is_set():
            try:
                image = self.ctx.images.lookup(reference)
            except ImageNotFoundError as error:
                entry = backoff.after_restart(
                    entry, self.ctx.monotonic(), self.ctx.monotonic(), self.ctx.backoff
                )
                if not await self._pull_failed(reference, str(error), entry.backoff_seconds):
                    return None
                continue
            self._pulled_events(reference, image)
            return image
        return None

    async def _pull_failed(self, reference: str, error: str, delay: float) -> bool:
        self._set(state=Waiting("ErrImagePull", error))
        self.host.event("Failed", f'Failed to pull image "{reference}": {error}', warning=True)
        self.host.event("Failed", "Error: ErrImagePull", warning=True)
        if not await self._sleep(self.ctx.backoff.initial_seconds):
            return False
        self._set(state=Waiting("ImagePullBackOff", f'Back-off pulling image "{reference}"'))
        self.host.event("BackOff", f'Back-off pulling image "{reference}"')
        self.host.event("Failed", "Error: ImagePullBackOff", warning=True)
        return await self._sleep(delay)

    def _pulled_events(self, reference: str, image: ImageSpec) -> None:
        policy = self.spec.get("imagePullPolicy", "IfNotPresent")
        present = normalize(reference) in self.ctx.pulled
        if present and policy != "Always":
            self.host.event("Pulled", f'Container image "{reference}" already present on machine')
            return
        self.host.event("Pulling", f'Pulling image "{reference}"')
        self.host.event(
            "Pulled",
            f'Successfully pulled image "{reference}" in 12ms (12ms including '
            f"waiting). Image size: {image.size_bytes} bytes.",
        )
        self.ctx.pulled.add(normalize(reference))

    async def _config(self) -> tuple[dict[str, str], tuple[VolumeMount, ...]] | None:
        """The container's env and volumeMounts; CreateContainerConfigError while they fail."""
        while not self.stop_requested.is_set():
            try:
                services = master_service_env(self.ctx.store.find("services", *MASTER_SERVICE))
                env = resolve_env(self.spec, self.host.facts(), self._lookup, services)
                return env, container_mounts(self.spec, env, self.host.volumes)
            except EnvConfigError as error:
                self._set(state=Waiting("CreateContainerConfigError", str(error)))
                self.host.event("Failed", f"Error: {error}", warning=True)
                if not await self._sleep(self.ctx.backoff.initial_seconds):
                    return None
        return None

    def _lookup(self, resource: str, name: str) -> KubeObject | None:
        return self.ctx.store.find(resource, self.host.pod["metadata"]["namespace"], name)

    async def _start(
        self, image: ImageSpec, env: dict[str, str], mounts: tuple[VolumeMount, ...]
    ) -> ContainerHandle | None:
        container_id = f"containerd://{self.ctx.rng.getrandbits(256):064x}"
        restart = self.record.restart_count + (1 if self._has_run() else 0)
        try:
            handle = await self._spawn(image, env, mounts, container_id, restart)
        except OSError as error:
            self._start_failed(container_id, restart, error)
            return None
        self.handle, self.virtual = handle, image.virtual
        self.ctx.handles.add(handle)
        self.probe_kill.clear()
        self.host.event("Created", f"Created container: {self.name}")
        self.host.event("Started", f"Started container {self.name}")
        started = image.virtual or self.spec.get("startupProbe") is None
        self._set(
            state=Running(handle.started_at),
            container_id=container_id,
            image_id=image.image_id,
            restart_count=restart,
            started=started,
            last_state=self._last_state(),
        )
        if started:
            self.readiness_trigger.set()
        return handle

    async def _spawn(
        self,
        image: ImageSpec,
        env: dict[str, str],
        mounts: tuple[VolumeMount, ...],
        container_id: str,
        restart: int,
    ) -> ContainerHandle:
        now = self.ctx.clock.now()
        if image.virtual:
            return VirtualContainer(container_id, now)
        facts = self.host.facts()
        process_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": facts.name,
            "POD_IP": facts.pod_ip,
            **image.image_env(),
            **env,
        }
        path = log_file(
            self.ctx.state_dir, facts.namespace, facts.name, facts.uid, self.name, restart
        )
        workdir = working_dir(self.spec, image)
        root: Path | ContainerRoot
        if workdir is None:
            root = standin_root(self.ctx.state_dir, facts.namespace, facts.name, facts.uid)
        else:
            at = new_root_dir(self.ctx.state_dir, facts.namespace, facts.name, facts.uid, self.name)
            at.mkdir(parents=True, exist_ok=True)
            root = container_root(self.spec, image, at, workdir)
        plan = plan_mounts(mounts, self.host.volumes, LocalHost(), root)
        prepare(plan.prepare)
        pod_directory = pod_dir(self.ctx.state_dir, facts.namespace, facts.name, facts.uid)
        pod_directory.mkdir(parents=True, exist_ok=True)
        # Upstream expands `$(VAR)` in command/args from the container's env only.
        command = [expand(str(word), env) for word in self.spec.get("command") or []]
        args = [expand(str(word), env) for word in self.spec.get("args") or []]
        return await start_process(
            image.argv(process_env, command, args, root if isinstance(root, Path) else None),
            process_env,
            path,
            self.ctx.pids_dir,
            container_id,
            self.ctx.clock.now,
            resolv_conf=self.host.resolv_conf,
            cgroup_procs=self.host.cgroup_procs,
            mounts=plan.steps,
            cwd=None if workdir is None else Path(workdir),
            stdin=bool(self.spec.get("stdin")),
        )

    def _start_failed(self, container_id: str, restart: int, error: OSError) -> None:
        now = self.ctx.clock.now()
        message = f"failed to create containerd task: {error}"
        self._set(
            state=Terminated(128, "StartError", now, now, message, container_id),
            container_id=container_id,
            restart_count=restart,
            last_state=self._last_state(),
        )
        self.host.event("Failed", f"Error: {message}", warning=True)

    def _has_run(self) -> bool:
        return bool(self.record.container_id) or self.record.last_state is not None

    def _last_state(self) -> Terminated | None:
        state = self.record.state
        return state if isinstance(state, Terminated) else self.record.last_state

    # ---- supervision and stop ----

    async def _supervise(self, handle: ContainerHandle) -> bool:
        """Wait for exit, a probe kill or the pod's deletion; True if a probe killed it."""
        exited = asyncio.ensure_future(handle.wait())
        waits = {
            exited,
            asyncio.ensure_future(self.probe_kill.wait()),
            asyncio.ensure_future(self.stop_requested.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        probe_killed = handle.returncode is None and not self.stop_requested.is_set()
        if handle.returncode is None:
            await self._kill(handle, probe_killed)
        self._exited(handle, await handle.wait())
        return probe_killed

    async def _kill(self, handle: ContainerHandle, probe_killed: bool) -> None:
        if probe_killed:
            self.host.event("Killing", self.probe_kill_message)
            grace = self._grace_for_probe_kill()
            self.kill_deadline = Deadline(self.ctx.monotonic() + grace)
        else:
            self.host.event("Killing", f"Stopping container {self.name}")
            self.kill_deadline = self.pod_deadline or Deadline(self.ctx.monotonic())
        if self.pod_deadline is not None:
            self.kill_deadline.shorten(self.pod_deadline.when)
        await stop_gracefully(handle, self.kill_deadline, self._pre_stop())
        self.kill_deadline = None

    def _grace_for_probe_kill(self) -> float:
        probe = self.spec.get(self.probe_kill_type.field) or {}
        pod_grace = self.host.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        return float(probe.get("terminationGracePeriodSeconds", pod_grace))

    def _pre_stop(self) -> PreStop | None:
        hook = (self.spec.get("lifecycle") or {}).get("preStop")
        if hook is None or self.virtual:
            return None

        async def run_hook(timeout: float) -> None:
            if "sleep" in hook:
                await asyncio.sleep(min(float(hook["sleep"].get("seconds", 0)), timeout))
                return
            outcome = await run_probe(hook, self._target(), timeout)
            if outcome.result is not Result.SUCCESS:
                self.host.event(
                    "FailedPreStopHook", f"PreStopHook failed: {outcome.output}", warning=True
                )

        return run_hook

    def _exited(self, handle: ContainerHandle, code: int) -> None:
        self.ctx.handles.discard(handle)
        now = self.ctx.clock.now()
        reason = exit_reason(code, handle.oom_killed)
        self._set(
            state=Terminated(
                code, reason, now, handle.started_at, container_id=handle.container_id
            ),
            started=False,
        )
        self.handle = None
        self.probe_kill.clear()

    async def _back_off(self) -> bool:
        finished = self.ctx.monotonic()
        delay = backoff.remaining_delay(self.restart_entry, finished, finished, self.ctx.backoff)
        if delay > 0:
            self._show_crash_loop(
                self.restart_entry.backoff_seconds if self.restart_entry else delay
            )
            if not await self._sleep(delay):
                return False
        self.restart_entry = backoff.after_restart(
            self.restart_entry, finished, self.ctx.monotonic(), self.ctx.backoff
        )
        return True

    def _show_crash_loop(self, backoff_seconds: float) -> None:
        pod = self.host.pod["metadata"]
        which = f"{pod['name']}_{pod['namespace']}({pod['uid']})"
        backoff = format_go_duration(int(backoff_seconds * 10**9))
        message = f"back-off {backoff} restarting failed container={self.name}"
        self._set(
            state=Waiting("CrashLoopBackOff", f"{message} pod={which}"),
            last_state=self._last_state(),
        )
        self.host.event(
            "BackOff",
            f"Back-off restarting failed container {self.name} in pod {which}",
            warning=True,
        )

    # ---- probes ----

    def _start_probes(self, image: ImageSpec) -> None:
        if self._probe_tasks or image.virtual:
            return
        for probe_type in ProbeType:
            probe = self.spec.get(probe_type.field)
            if probe is not None:
                task = asyncio.ensure_future(self._probe_loop(probe_type, probe))
                self._probe_tasks.append(task)

    async def _probe_loop(self, probe_type: ProbeType, probe: Mapping[str, Any]) -> None:
        spec = probes.ProbeSpec.from_json(probe)
        state = probes.new_worker(probe_type, spec)
        trigger = self.readiness_trigger if probe_type is ProbeType.READINESS else None
        tick = self.ctx.monotonic() + self.ctx.rng.random() * spec.period_seconds  # jitter
        await self._tick(tick, trigger)
        while True:
            state, step = probes.before_probe(state, self._pod_view(), self._container_view())
            self._on_probe_state(state)
            if step is probes.Step.STOP:
                return
            if step is probes.Step.PROBE:
                state = await self._probe_once(state, probe)
                self._on_probe_state(state)
            tick = next_tick(tick, spec.period_seconds, self.ctx.monotonic())
            await self._tick(tick, trigger)

    async def _probe_once(
        self, state: probes.WorkerState, probe: Mapping[str, Any]
    ) -> probes.WorkerState:
        outcome = await run_probe(probe, self._target(), state.spec.timeout_seconds)
        if outcome.result is Result.FAILURE:
            self.host.event(
                "Unhealthy",
                f"{state.probe_type.value} probe failed: {outcome.output}",
                warning=True,
            )
        return probes.after_probe(state, outcome.result)

    async def _tick(self, when: float, trigger: asyncio.Event | None) -> None:
        """Until the ticker's next tick, or a manual trigger (readiness, once started)."""
        seconds = max(0.0, when - self.ctx.monotonic())
        if trigger is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await trigger.wait()
        trigger.clear()

    def _on_probe_state(self, state: probes.WorkerState) -> None:
        """Act when a published result changes (results_manager publishes only on change)."""
        if state.result is None:
            return
        published = (state.container_id, state.result)
        if self.results.get(state.probe_type) == published:
            return
        self.results[state.probe_type] = published
        running = isinstance(self.record.state, Running)
        if state.container_id != self.record.container_id or not running:
            return
        if state.result is Result.FAILURE and state.probe_type is not ProbeType.READINESS:
            self._request_probe_kill(state.probe_type)
        if state.probe_type is ProbeType.STARTUP and state.result is Result.SUCCESS:
            self.readiness_trigger.set()
            self._set(started=True)
        self._set()

    def _request_probe_kill(self, probe_type: ProbeType) -> None:
        self.probe_kill_type = probe_type
        self.probe_kill_message = (
            f"Container {self.name} failed {probe_type.value.lower()} probe, will be restarted"
        )
        self.probe_kill.set()

    def _ready(self, record: ContainerRecord) -> bool:
        readiness = self.results.get(ProbeType.READINESS)
        result = readiness[1] if readiness and readiness[0] == record.container_id else None
        has_probe = self.spec.get("readinessProbe") is not None and not self.virtual
        return readiness_of(record, has_probe, result)

    def _pod_view(self) -> probes.PodView:
        phase = (self.host.pod.get("status") or {}).get("phase")
        return probes.PodView(
            terminal=phase in ("Succeeded", "Failed"),
            deleting=self.host.deleting,
            restart_never=self._restart_policy() == "Never",
        )

    def _container_view(self) -> probes.ContainerView | None:
        record = self.record
        if not record.container_id:
            return None
        running = isinstance(record.state, Running)
        since = (
            (self.ctx.clock.now() - record.state.started_at).total_seconds()
            if isinstance(record.state, Running)
            else 0.0
        )
        return probes.ContainerView(
            record.container_id,
            running,
            isinstance(record.state, Terminated),
            since,
            record.started,
        )

    def _target(self) -> ProbeTarget:
        ports = {
            p["name"]: int(p["containerPort"])
            for p in self.spec.get("ports") or []
            if p.get("name")
        }
        return ProbeTarget(self.host.pod_ip, ports)

    # ---- helpers ----

    def _restart_policy(self) -> str:
        return str(self.host.pod.get("spec", {}).get("restartPolicy", "Always"))

    def _set(self, **changes: Any) -> None:
        """Change the record (readiness is derived), and publish the pod status if it changed."""
        record = replace(self.record, **changes)
        record = replace(record, ready=self._ready(record))
        if record != self.record:
            self.record = record
            self.host.publish()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the pod is deleted meanwhile; False when it was."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop_requested.wait()
        return not self.stop_requested.is_set()

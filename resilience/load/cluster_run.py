"""Locust in pods, through the Kubernetes API: `ClusterLoadRun` has `LoadRun`'s interface.

    with ClusterLoadRun(plan, api, workers=2) as run:   # creates master, workers
        result = run.wait()                              # collects, then deletes

`start` renders deploy/locust, turns it into this run's objects
(`resilience.load.cluster.cluster_objects`), journals their delete (a `delete-load`
undo: `resilience recover` deletes them after a `kill -9`) and creates them. `wait`
reads the master's log until its run is over (`cluster.master_finished`), lets the
workers' last reports arrive (`SETTLE`), and calls `stop`, which collects the
master's timeline and CSVs (by exec of `cat` in its container, as `kubectl cp`
does with `tar`), its HTML report (from its web UI, through a port-forward) and the
pods' logs into `plan.out_dir`, then deletes every object of
the run and waits for its pods to be gone. Leaving the `with` block, on an exception
or Ctrl-C, does the same; `sigterm_interrupts` makes SIGTERM a Ctrl-C for the CLIs.
Every wait is bounded: the run by `deadline(plan)`, each request by
`REQUEST_TIMEOUT`, each exec by `EXEC_TIMEOUT`, the teardown by `TEARDOWN_TIMEOUT`.

While it runs, `timeline()` appends what the master's timeline file gained since the
last look (`tail -c +N`), at most every `FETCH_INTERVAL` seconds.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward, stream
from urllib3.exceptions import HTTPError

from resilience.errors import InvalidInputError, ResilienceError
from resilience.load.cluster import (
    CONTAINER,
    LOAD_NAMESPACE,
    POD_OUT,
    RESULT_FILES,
    RUN_LABEL,
    ClusterLoad,
    KubeObject,
    cluster_objects,
    master_finished,
)
from resilience.load.requests import RequestTimeline, read_timeline
from resilience.load.runner import (
    CHAOS,
    LOCUST_LOG,
    TIMELINE,
    LoadPlan,
    LoadResult,
    LoadRunBase,
    locust_files,
)
from resilience.manifests import render
from resilience.paths import PROJECT_ROOT
from resilience.safety import undo_journal

DEPLOY_LOCUST = PROJECT_ROOT / "deploy" / "locust"
# Pods scheduled, started, workers connected to the master: generous for an image pull.
STARTUP_TIMEOUT = 180.0
# An autostarted master waits up to stop_timeout + 60 s for its workers to stop
# (runners.py MasterRunner.stop) before it logs the end.
MASTER_STOP_WAIT = 60.0
# After the end: workers report every 3 s (runners.py WORKER_REPORT_INTERVAL, which
# carries their last timeline records) and the master flushes its CSVs every 5 s
# (stats.py CSV_STATS_FLUSH_INTERVAL_SEC); wait for both, twice.
SETTLE = 2 * 5.0
POLL = 2.0
FETCH_INTERVAL = 5.0
REQUEST_TIMEOUT = 15.0
EXEC_TIMEOUT = 60.0
TEARDOWN_TIMEOUT = 120.0
API_ERRORS = (ApiException, HTTPError, OSError)
WEB_PORT = 8089  # the master's web UI (deploy/locust/master.yaml `web`)
# What `--html` writes at exit, served by the web UI (locust/web.py `stats_report`).
HTML_REPORT = b"GET /stats/report?download=1 HTTP/1.0\r\nHost: localhost\r\n\r\n"
HTML_FILE = "locust.html"


def deadline(plan: LoadPlan) -> float:
    """Seconds after start when the run is stopped, whatever the master says."""
    return STARTUP_TIMEOUT + plan.run_time + plan.stop_timeout + MASTER_STOP_WAIT


def new_run_id(now: float | None = None) -> str:
    """`load-20260102t030405-123`: a label value, sortable, one per start."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    return f"load-{moment:%Y%m%dt%H%M%S}-{moment.microsecond // 1000:03d}"


class ClusterLoadRun(LoadRunBase):
    """A Locust master and workers in pods; a context manager that always deletes them."""

    def __init__(
        self,
        plan: LoadPlan,
        api: client.ApiClient,
        workers: int,
        namespace: str = LOAD_NAMESPACE,
        run_id: str | None = None,
        chaos_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        recovery_journal: Path | None = None,
        manifests: Path = DEPLOY_LOCUST,
    ) -> None:
        self.plan = plan
        self.api = api
        self.workers = workers
        self.namespace = namespace
        self.run_id = run_id or new_run_id()
        self.chaos_file = chaos_file or plan.out_dir / CHAOS
        self.clock = clock
        self.recovery_journal = (recovery_journal or undo_journal.journal_path()).resolve()
        self.manifests = manifests
        self.load: ClusterLoad | None = None
        self.worker_pods: set[str] = set()  # every worker pod seen (the run's evidence)
        self._undo: str | None = None
        self._started = 0.0
        self._finished = False
        self._stopped_by_runner = False
        self._torn_down = False
        self._fetched_at = 0.0

    # ---- life cycle ----

    def start(self) -> ClusterLoadRun:
        if self.load is not None:
            raise RuntimeError("this run was started already")
        plan = self.plan
        for path in locust_files(plan):
            if not path.is_file():
                raise InvalidInputError(f"{path}: no such locustfile")
        rendered = render(self.manifests, files_outside=True)
        load = cluster_objects(
            [o.body for o in rendered.objects], plan, self.workers, self.run_id, self.namespace
        )
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        self.chaos_file.touch()
        (plan.out_dir / TIMELINE).touch()
        self.load = load
        self._started = self.clock()
        target = {"namespace": load.namespace, "run_id": load.run_id}
        self._undo = undo_journal.record("delete-load", target, self.recovery_journal)
        try:
            _ensure_namespace(self.api, load.namespace_object)
            for obj in load.objects:
                _create(self.api, load.namespace, obj)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> ClusterLoadRun:
        return self.start() if self.load is None else self

    @property
    def running(self) -> bool:
        return self.load is not None and not self._finished and not self._torn_down

    def deadline(self) -> float:
        return deadline(self.plan)

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Until the master's run is over (then `SETTLE` seconds for the last reports),
        at most `timeout` (default: what is left of `deadline(plan)`); then `stop`."""
        end = self._started + self.deadline()
        if timeout is not None:
            end = min(end, self.clock() + timeout)
        while self.running and self.clock() < end:
            self._note_workers()
            if master_finished(self._master_log()):
                self._finished = True
                time.sleep(SETTLE)
                break
            time.sleep(POLL)
        if not self._finished:
            self._stopped_by_runner = True
        return self.stop()

    def stop(self) -> LoadResult:
        """Collect the master's files and the logs, then delete the run's objects and wait
        (bounded) for its pods to be gone. Twice is harmless."""
        if self.load is not None and not self._torn_down:
            if not self._finished:
                self._stopped_by_runner = True
            try:
                self._note_workers()
                self._collect()
            finally:
                delete_run(self.api, self.load.namespace, self.load.run_id, TEARDOWN_TIMEOUT)
                self._torn_down = True
                if self._undo is not None:
                    undo_journal.mark_done(self._undo, self.recovery_journal)
                    self._undo = None
        return self.result()

    def result(self) -> LoadResult:
        return LoadResult(
            plan=self.plan,
            returncode=None,  # the master's process never exits (see resilience.load.cluster)
            stopped_by_runner=self._stopped_by_runner,
            started=self._started,
            ended=self.clock(),
            timeline=read_timeline(self.plan.out_dir / TIMELINE),
            marks=tuple(self.marks()),
        )

    def timeline(self) -> RequestTimeline:
        """What the master recorded so far: fetched at most every FETCH_INTERVAL s."""
        if self.running and time.monotonic() - self._fetched_at >= FETCH_INTERVAL:
            self._fetched_at = time.monotonic()
            with contextlib.suppress(*API_ERRORS, ResilienceError):
                self._fetch_timeline()
        return read_timeline(self.plan.out_dir / TIMELINE)

    # ---- I/O ----

    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def _pods(self, selector: str) -> list[Any]:
        listed = self._core().list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        )
        return list(listed.items)

    def _master_pod(self) -> str | None:
        assert self.load is not None
        running = [p for p in self._pods(self.load.master_selector) if _is_running(p)]
        return str(running[0].metadata.name) if running else None

    def _note_workers(self) -> None:
        assert self.load is not None
        with contextlib.suppress(*API_ERRORS):
            self.worker_pods |= {p.metadata.name for p in self._pods(self.load.worker_selector)}

    def _master_log(self) -> str:
        pod = None
        with contextlib.suppress(*API_ERRORS):
            pod = self._master_pod()
        if pod is None:
            return ""
        try:
            log = self._core().read_namespaced_pod_log(
                pod, self.namespace, container=CONTAINER, _request_timeout=REQUEST_TIMEOUT
            )
        except API_ERRORS:
            return ""
        return str(log)

    def _fetch_timeline(self) -> None:
        """Append what the master's timeline gained since the local copy's end."""
        pod = self._master_pod()
        if pod is None:
            return
        local = self.plan.out_dir / TIMELINE
        have = local.stat().st_size if local.exists() else 0
        gained = exec_output(
            self._core(),
            self.namespace,
            pod,
            ["tail", "-c", f"+{have + 1}", f"{POD_OUT}/{TIMELINE}"],
        )
        with local.open("ab") as stream_:
            stream_.write(gained)

    def _collect(self) -> None:
        """The master's result files and every pod's log into out_dir; what could not be
        read is said in locust.log (the certificate's run problems then name it)."""
        assert self.load is not None
        out = self.plan.out_dir
        notes: list[str] = []
        try:
            pod = self._master_pod()
        except API_ERRORS as error:
            pod, notes = None, [f"the master pod could not be listed: {error}"]
        if pod is not None:
            for name in RESULT_FILES:
                try:
                    data = exec_output(
                        self._core(), self.namespace, pod, ["cat", f"{POD_OUT}/{name}"]
                    )
                except (*API_ERRORS, ResilienceError) as error:
                    notes.append(f"{name} not collected from {pod}: {error}")
                    continue
                (out / name).write_bytes(data)
            try:
                (out / HTML_FILE).write_bytes(html_report(self._core(), self.namespace, pod))
            except (*API_ERRORS, ResilienceError) as error:
                notes.append(f"{HTML_FILE} not fetched from {pod}'s web UI: {error}")
        elif not notes:
            notes.append("no running master pod to collect the results from")
        with (out / LOCUST_LOG).open("a", encoding="utf-8") as log:
            for selector in (self.load.master_selector, self.load.worker_selector):
                with contextlib.suppress(*API_ERRORS):
                    for item in self._pods(selector):
                        log.write(f"==> pod {item.metadata.name} <==\n")
                        log.write(self._pod_log(item.metadata.name))
            for note in notes:
                log.write(f"resilience: {note}\n")

    def _pod_log(self, pod: str) -> str:
        try:
            text = self._core().read_namespaced_pod_log(
                pod, self.namespace, container=CONTAINER, _request_timeout=REQUEST_TIMEOUT
            )
        except API_ERRORS as error:
            return f"(no log: {error})\n"
        return str(text) if str(text).endswith("\n") or not text else f"{text}\n"


def exec_output(
    core: client.CoreV1Api,
    namespace: str,
    pod: str,
    command: list[str],
    timeout: float = EXEC_TIMEOUT,
) -> bytes:
    """Standard output of `command` run in the pod's Locust container (binary-safe);
    `ResilienceError` if it fails or outlasts `timeout`."""
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=CONTAINER,
        command=command,
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        binary=True,
        _preload_content=False,
        _request_timeout=timeout,
    )
    out, err = bytearray(), bytearray()
    give_up = time.monotonic() + timeout
    try:
        while ws.is_open():
            if time.monotonic() > give_up:
                raise ResilienceError(f"{' '.join(command)} in {pod}: no end within {timeout:g}s")
            ws.update(timeout=1)
            out += ws.read_stdout(timeout=0) or b""
            err += ws.read_stderr(timeout=0) or b""
        out += ws.read_stdout(timeout=0) or b""
        err += ws.read_stderr(timeout=0) or b""
        code = ws.returncode
    finally:
        ws.close()
    if code not in (0, None):
        message = bytes(err).decode("utf-8", "replace").strip()
        raise ResilienceError(f"{' '.join(command)} in {pod}: exit code {code}: {message}")
    return bytes(out)


def html_report(
    core: client.CoreV1Api, namespace: str, pod: str, timeout: float = EXEC_TIMEOUT
) -> bytes:
    """The master's HTML report, from its web UI through a port-forward: what `--html`
    writes when Locust exits, which the master in a pod must not do."""
    forward = portforward(
        core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(WEB_PORT)
    )
    answer = bytearray()
    try:
        connection = forward.socket(WEB_PORT)
        connection.settimeout(timeout)
        connection.sendall(HTML_REPORT)
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        forward.close()
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if status.split(" ")[1:2] != ["200"]:
        raise ResilienceError(f"GET /stats/report answered {status or 'nothing'!r}")
    return body


def delete_run(api: client.ApiClient, namespace: str, run_id: str, timeout: float) -> list[str]:
    """Delete every object labelled with the run id and wait until its pods are gone;
    the names deleted. `ResilienceError` if pods outlive `timeout`. (The `delete-load`
    undo of `resilience recover`.)"""
    selector = f"{RUN_LABEL}={run_id}"
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deleted: list[str] = []
    lists_and_deletes: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("Deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
        ("Service", core.list_namespaced_service, core.delete_namespaced_service),
        ("ConfigMap", core.list_namespaced_config_map, core.delete_namespaced_config_map),
    ]
    for kind, list_, delete in lists_and_deletes:
        found = list_(namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT)
        for item in found.items:
            if _delete(delete, item.metadata.name, namespace):
                deleted.append(f"{kind}/{item.metadata.name}")
    give_up = time.monotonic() + timeout
    while True:
        pods = core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        ).items
        if not pods:
            return deleted
        if time.monotonic() > give_up:
            names = ", ".join(sorted(str(_name(p)) for p in pods))
            raise ResilienceError(
                f"load run {run_id}: pods still there after {timeout:g}s: {names}"
            )
        time.sleep(1.0)


def _delete(delete: Callable[..., Any], name: str, namespace: str) -> bool:
    """Delete one object; False if it was gone already."""
    try:
        delete(
            name,
            namespace,
            body=client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _ensure_namespace(api: client.ApiClient, namespace: KubeObject) -> None:
    try:
        create: Callable[..., Any] = client.CoreV1Api(api).create_namespace
        create(dict(namespace), _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status != 409:  # there already: it is not the run's to delete
            raise


def _create(api: client.ApiClient, namespace: str, obj: KubeObject) -> None:
    kind, name = obj["kind"], obj["metadata"]["name"]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    creators: dict[str, Callable[..., Any]] = {
        "ConfigMap": core.create_namespaced_config_map,
        "Service": core.create_namespaced_service,
        "Deployment": apps.create_namespaced_deployment,
    }
    if kind not in creators:
        raise InvalidInputError(f"deploy/locust: {kind}/{name} is not an object a load run creates")
    try:
        creators[kind](namespace, dict(obj), _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 409:
            raise InvalidInputError(
                f"{kind}/{name} exists already in {namespace}: another on-cluster load runs "
                f"there (delete it, or run `resilience recover` if a killed run left it)"
            ) from None
        raise


def _name(obj: Any) -> str:
    return str(obj.metadata.name)


def _is_running(pod: Any) -> bool:
    return (
        pod.status is not None
        and pod.status.phase == "Running"
        and not pod.metadata.deletion_timestamp
    )


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while the block runs, so that a
    terminated CLI deletes its load as Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    saved = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)

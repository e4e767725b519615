"""Root fixtures shared by suites/ and tests/: options, the intended policy, the live target.

Options live in one named group ("harmonyflow"). Locust's pytest plugin is
disabled in pyproject (`-p no:locust`): it registers `--host` and friends and
would clash with target selection; load runs as a Locust subprocess, so nothing
here imports locust and the gevent import-order trap cannot bite. None of our
options reuses a Locust option name either (`--host`, `--users`, ...).

Targets (the `target` fixture, session-scoped, started on first use only):

- no target option: a sandbox of our own, started with `resilience sandbox up`
  in a temporary state directory and stopped with `resilience sandbox down` at
  the end of the session -- also on Ctrl-C, and on SIGTERM, which is turned into
  the same KeyboardInterrupt path. `--keep-sandbox` leaves it running and prints
  how to reach and stop it.
- `--kube-context NAME` (with `--kubeconfig PATH`, default $KUBECONFIG): a real
  cluster. AWS settings come from the environment (AWS_ENDPOINT_URL, AWS_REGION,
  credentials), as boto3 reads them. Production-looking contexts are refused
  unless `--allow-production NAME` types the context name back; only allowlisted
  namespaces may be disrupted (resilience.safety.refusals).

Both paths go through the same checks: kubeconfig readable, API reachable within
seconds, interlocks, namespace and Deployment present, and the permissions the
selected resilience tests need (SelfSubjectAccessReview, `resilience.preflight`).
Each failure ends the session's resilience tests with one clear message, never a
hang.
"""

from __future__ import annotations

import os
import signal
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from resilience.errors import ResilienceError
from resilience.manifests import RenderedManifests, render
from resilience.observe.monitors import MonitorScope, watched_kinds
from resilience.policy import IntendedPolicy, policy_from_manifests
from resilience.preflight import review
from resilience.preflight.needs import SuiteTest, suite_needs
from resilience.safety.refusals import InterlockRefused, SafetySettings
from resilience.targets.cluster import Target, TargetUnreachableError, check_reachable, load_target
from resilience.targets.live import REQUEST_TIMEOUT, LiveTarget
from resilience.targets.sandbox import (
    SandboxSession,
    requested_extras,
    sandbox_down,
    sandbox_running,
    sandbox_up,
    with_flags,
)
from tests.run_parts import TEST_PARTS, in_part

REPO_ROOT = Path(__file__).resolve().parent
OVERLAYS = ("sandbox", "staging")
SANDBOX_CONTEXT = "harmonyflow-sandbox"
SANDBOX_EXTRAS = pytest.StashKey[tuple[str, ...]]()
SUITE_TESTS = pytest.StashKey[tuple[SuiteTest, ...]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harmonyflow", "HarmonyFlow resilience")
    group.addoption(
        "--deploy-dir",
        default=str(REPO_ROOT / "deploy"),
        help="directory holding base/ and overlays/ (default: the repository's deploy/)",
    )
    group.addoption(
        "--kube-context",
        default=None,
        metavar="NAME",
        help="run the resilience suites against this kubeconfig context instead of a sandbox",
    )
    group.addoption(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="kubeconfig for --kube-context (default: $KUBECONFIG, then ~/.kube/config)",
    )
    group.addoption(
        "--namespace",
        default=None,
        metavar="NS",
        help="namespace of the service (default: the namespace of deploy/base)",
    )
    group.addoption(
        "--base-url",
        default=None,
        metavar="URL",
        help="URL of the service's ingress (default: the sandbox's, or https://<Ingress host>)",
    )
    group.addoption(
        "--allow-production",
        default=None,
        metavar="CONTEXT",
        help="run against a production-looking context; type its name exactly to confirm",
    )
    group.addoption(
        "--keep-sandbox",
        action="store_true",
        help="leave the session's sandbox running at the end (prints how to stop it)",
    )
    group.addoption(
        "--keep-timeline",
        action="store_true",
        help="export every test's timeline to the reports directory, not only failed ones",
    )
    group.addoption(
        "--part",
        default="all",
        choices=TEST_PARTS,
        help="run only the tests on the full sandbox (fixed addresses, one at a time), or "
        "only the rest; `make test` runs both side by side (default: all)",
    )
    group.addoption(
        "--reports-dir",
        default=str(REPO_ROOT / "reports"),
        metavar="DIR",
        help="where timelines and findings go (default: reports/)",
    )


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--part` keeps the tests of one part. The session's sandbox then runs the optional
    parts (RabbitMQ, monitoring) that the selected tests ask for with
    `@pytest.mark.sandbox_with(...)`, and only those."""
    part = config.getoption("--part")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        markers = [marker.name for marker in item.iter_markers()]
        callspec = getattr(item, "callspec", None)  # parametrize arguments are no fixtures
        arguments = set(callspec.params) if callspec is not None else set()
        fixtures = set(getattr(item, "fixturenames", ())) - arguments
        (kept if in_part(part, markers, fixtures) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    config.stash[SANDBOX_EXTRAS] = requested_extras(items)
    config.stash[SUITE_TESTS] = suite_tests(items)


def suite_tests(items: Sequence[pytest.Item]) -> tuple[SuiteTest, ...]:
    """The selected resilience tests of suites/, as the permissions preflight reads them."""
    found = []
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        if module.startswith("suites.") and item.get_closest_marker("resilience") is not None:
            fixtures = frozenset(getattr(item, "fixturenames", ()))
            destructive = item.get_closest_marker("destructive") is not None
            found.append(SuiteTest(module, fixtures, destructive))
    return tuple(dict.fromkeys(found))


@pytest.fixture(scope="session")
def deploy_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.getoption("--deploy-dir"))
    if not (path / "base").is_dir():
        raise pytest.UsageError(f"--deploy-dir {path}: no base/ directory in it")
    return path


@pytest.fixture(scope="session")
def base_manifests(deploy_dir: Path) -> RenderedManifests:
    """deploy/base rendered: the intended policy's source."""
    return render(deploy_dir / "base")


@pytest.fixture(scope="session")
def intended_policy(base_manifests: RenderedManifests) -> IntendedPolicy:
    """What the service must guarantee; suites compare observations with this."""
    return policy_from_manifests(base_manifests)


@pytest.fixture(scope="session")
def reports_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.getoption("--reports-dir")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def target(
    pytestconfig: pytest.Config,
    intended_policy: IntendedPolicy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveTarget]:
    """The live target of the resilience suites: a sandbox of our own, or --kube-context."""
    namespace = pytestconfig.getoption("--namespace") or intended_policy.namespace
    context = pytestconfig.getoption("--kube-context")
    with pytest.MonkeyPatch.context() as env:
        if context:
            kubeconfig = pytestconfig.getoption("--kubeconfig")
            live = _connect(pytestconfig, intended_policy, namespace, kubeconfig, context, {}, "")
            _check_permissions(pytestconfig, live, intended_policy)
            _point_clients_at(env, live)
            yield live
            return
        with _terminate_as_interrupt():
            keep = bool(pytestconfig.getoption("--keep-sandbox"))
            state = _sandbox_state_dir(tmp_path_factory, keep)
            try:
                extras: tuple[str, ...] = pytestconfig.stash.get(SANDBOX_EXTRAS, ())
                session = _start_sandbox(state, extras)
                live = _connect(
                    pytestconfig,
                    intended_policy,
                    namespace,
                    str(session.kubeconfig),
                    SANDBOX_CONTEXT,
                    session.service_env,
                    session.ingress_url,
                )
                _check_permissions(pytestconfig, live, intended_policy)
                _point_clients_at(env, live)
                yield live
            finally:
                _stop_sandbox(state, keep)


def _check_permissions(
    pytestconfig: pytest.Config, live: LiveTarget, policy: IntendedPolicy
) -> None:
    """The permissions preflight of the selected resilience tests (their modules and
    fixtures, `resilience.preflight.table.SUITES`): one failure naming every missing
    permission, before any test disrupts anything."""
    tests = pytestconfig.stash.get(SUITE_TESTS, ())
    if not tests:
        return
    scope = MonitorScope.for_policy(policy, namespace=live.namespace)
    needs = suite_needs(tests, live.namespace, watched_kinds(scope))
    try:
        review.check(live.api, needs, _preflight_warning)
    except ResilienceError as error:
        pytest.fail(f"target {live.context}: {error}", pytrace=False)


def _preflight_warning(line: str) -> None:
    warnings.warn(review.PreflightWarning(f"preflight: {line}"), stacklevel=2)


def _point_clients_at(env: pytest.MonkeyPatch, live: LiveTarget) -> None:
    """KUBECONFIG, KUBERNETES_CONTEXT and the AWS settings for everything that reads the
    environment: kubectl, boto3 and the chaos activities (chaostoolkit-kubernetes).

    chaosk8s's `create_k8s_api_client` checks $KUBECONFIG but then loads the
    kubernetes client's default path, which that module read from $KUBECONFIG
    once, at import; it is pointed at the target too.
    """
    for name, value in live.client_env().items():
        env.setenv(name, value)
    env.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(live.kubeconfig))


def _sandbox_state_dir(factory: pytest.TempPathFactory, keep: bool) -> Path:
    """Where the session's sandbox keeps its state. A kept sandbox outlives the session,
    so not under pytest's base temp: the next pytest runs delete all but the newest three
    of those (once this session's lock is gone), and a running sandbox would lose its
    kubeconfig and logs, unreachable and unstoppable by `sandbox down`."""
    if keep:
        return Path(tempfile.mkdtemp(prefix="harmonyflow-kept-sandbox-"))
    return factory.mktemp("sandbox")


def _start_sandbox(state: Path, extras: Sequence[str]) -> SandboxSession:
    try:
        return sandbox_up(state, with_flags(extras))
    except ResilienceError as error:
        pytest.fail(f"the sandbox did not start: {error}", pytrace=False)


def _stop_sandbox(state: Path, keep: bool) -> None:
    if keep:
        print(
            f"\n--keep-sandbox: still running. Reach it with\n"
            f'  eval "$(.venv/bin/resilience sandbox env --state-dir {state})"\n'
            f"stop it with\n  .venv/bin/resilience sandbox down --state-dir {state}"
        )
        return
    note = sandbox_down(state)
    if sandbox_running(state):
        raise RuntimeError(f"the session's sandbox in {state} is still running after down: {note}")


def _connect(
    pytestconfig: pytest.Config,
    policy: IntendedPolicy,
    namespace: str,
    kubeconfig: str | None,
    context: str,
    service_env: dict[str, str],
    base_url: str,
) -> LiveTarget:
    """Read, check and describe the target; one clear failure for each way it can be wrong."""
    confirmation = pytestconfig.getoption("--allow-production")
    try:
        where = load_target(kubeconfig, context, namespace, env={**os.environ, **service_env})
        where.check_safety(
            SafetySettings(allow_production=confirmation is not None, confirmation=confirmation)
        )
        api = where.api_client()
        check_reachable(where, timeout=5.0, api_client=api)
    except (InterlockRefused, TargetUnreachableError, ResilienceError) as error:
        pytest.fail(f"target {context}: {error}", pytrace=False)
    _require_objects(api, where, policy)
    url = pytestconfig.getoption("--base-url") or base_url or _ingress_url(api, where, policy)
    return LiveTarget(
        api=api,
        kubeconfig=where.kubeconfig,
        context=where.context,
        server=where.server,
        namespace=where.namespace,
        deployment=policy.deployment,
        service=policy.deployment,
        base_url=url.rstrip("/"),
        service_env=service_env,
        kind="cluster" if pytestconfig.getoption("--kube-context") else "sandbox",
    )


def _require_objects(api: client.ApiClient, where: Target, policy: IntendedPolicy) -> None:
    try:
        client.CoreV1Api(api).read_namespace(where.namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            pytest.fail(
                f"target {where.context}: namespace {where.namespace!r} does not exist "
                f"(deploy the service there, or pass --namespace)",
                pytrace=False,
            )
        pytest.fail(f"target {where.context}: reading namespace: {error.reason}", pytrace=False)
    try:
        client.AppsV1Api(api).read_namespaced_deployment(
            policy.deployment, where.namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:
            pytest.fail(
                f"target {where.context}: no Deployment {policy.deployment!r} in namespace "
                f"{where.namespace!r}; the suites test deploy/base's service",
                pytrace=False,
            )
        pytest.fail(
            f"target {where.context}: reading the Deployment: {error.reason}", pytrace=False
        )


def _ingress_url(api: client.ApiClient, where: Target, policy: IntendedPolicy) -> str:
    """https://<host> of the first Ingress rule routing to the service, or a clear failure."""
    ingresses: Any = client.NetworkingV1Api(api).list_namespaced_ingress(
        where.namespace, _request_timeout=REQUEST_TIMEOUT
    )
    for ingress in ingresses.items or []:
        for rule in ingress.spec.rules or []:
            paths = rule.http.paths if rule.http else []
            if rule.host and any(p.backend.service.name == policy.deployment for p in paths):
                return f"https://{rule.host}"
    pytest.fail(
        f"target {where.context}: no Ingress host routes to {policy.deployment}; pass --base-url",
        pytrace=False,
    )


class _Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as Ctrl-C so that every teardown (sandbox down included) runs."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(f"signal {signum}")


class _terminate_as_interrupt:
    """While the sandbox runs, SIGTERM takes the Ctrl-C path (pytest tears fixtures down)."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, _raise_interrupt)

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)

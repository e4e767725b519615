"""render_config: pure decisions as tables, whole configs as golden files, checked by `nginx -t`.

Regenerate the golden files with `UPDATE_GOLDEN=1` after a deliberate change.
"""

from __future__ import annotations

import doctest
import os
import random
import subprocess
from pathlib import Path

import pytest

from sandbox.infra import (
    clusterdns,
    monitoring,
    nginx_config,
    postgres,
    rabbitmq_cluster,
    redis_cluster,
)
from sandbox.infra.nginx_config import (
    INGRESS_POD_ADDRESS,
    NO_ENDPOINTS_BODY,
    NginxPaths,
    PathType,
    ProxySettings,
    endpoint_is_ready,
    location_matches,
    plan_ingresses,
    proxy_settings,
    ready_servers,
    render_config,
)
from sandbox.kube.settings import ControlPlaneSettings
from tests.sandbox.infra.builders import (
    API_HOST,
    NGINX,
    WS_HOST,
    KubeObject,
    deploy_manifest,
    make_endpoint,
    make_ingress,
    make_path,
    make_service,
    make_slice,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_PATHS = NginxPaths(Path("/sandbox-state/nginx"))
A, B, C, D = "127.0.2.10", "127.0.2.11", "127.0.2.12", "127.0.2.9"


Inputs = tuple[list[KubeObject], list[KubeObject], list[KubeObject]]  # ingresses, services, slices


def harmonyflow_inputs(endpoints: list[KubeObject]) -> Inputs:
    return (
        [deploy_manifest("ingress")],
        [deploy_manifest("service")],
        [make_slice(endpoints)],
    )


def multi_ingress_inputs() -> Inputs:
    """Two Ingresses, annotations, an Exact path, a host-less rule and a second Service."""
    web = make_ingress(
        "web",
        {
            "shop.example.com": [make_path("/"), make_path("/cart", "cart", "http")],
            "": [make_path("/status", path_type="Exact")],
        },
        annotations={
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        },
    )
    admin = make_ingress(
        "admin",
        {"admin.example.com": [make_path("/", port=80)]},
        created="2026-01-02T00:00:00Z",
        annotations={"nginx.ingress.kubernetes.io/proxy-connect-timeout": "2"},
    )
    cart = make_service("cart", ports=[{"name": "http", "port": 8000, "targetPort": 9000}])
    return (
        [admin, web],
        [make_service(), cart],
        [
            make_slice([make_endpoint(B), make_endpoint(A)]),
            make_slice(
                [make_endpoint(C)],
                service="cart",
                ports=[{"name": "http", "port": 9000, "protocol": "TCP"}],
            ),
        ],
    )


GOLDEN_CASES: dict[str, Inputs] = {
    "harmonyflow": harmonyflow_inputs(
        [
            make_endpoint(A),
            make_endpoint(B, ready=False),
            make_endpoint(C, ready=False, serving=True, terminating=True),
            make_endpoint(D),
        ]
    ),
    "no_endpoints": harmonyflow_inputs([make_endpoint(A, ready=False)]),
    "two_ingresses": multi_ingress_inputs(),
    "no_ingress": ([], [], []),
}


# ---- pure decisions ----


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(make_endpoint(A), True, id="ready"),
        pytest.param(make_endpoint(A, ready=False), False, id="unready"),
        pytest.param(
            make_endpoint(A, ready=False, serving=True, terminating=True),
            False,
            id="terminating-still-serving",
        ),
        pytest.param(
            make_endpoint(A, ready=True, terminating=True),
            False,
            id="terminating-published-not-ready",
        ),
        pytest.param({"addresses": [A], "conditions": {}}, True, id="conditions-absent"),
    ],
)
def test_endpoint_is_ready(endpoint: KubeObject, expected: bool) -> None:
    assert endpoint_is_ready(endpoint) is expected


@pytest.mark.parametrize(
    ("slices", "port", "expected"),
    [
        pytest.param(
            [make_slice([make_endpoint(B), make_endpoint(A)])],
            {"name": "http"},
            (f"{A}:8080", f"{B}:8080"),
            id="sorted-by-address",
        ),
        pytest.param(
            [make_slice([make_endpoint(A), make_endpoint(B)])],
            {"name": "ws"},
            (f"{A}:8443", f"{B}:8443"),
            id="second-port-by-name",
        ),
        pytest.param(
            [
                make_slice(
                    [
                        make_endpoint(A),
                        make_endpoint(B, ready=False),
                        make_endpoint(C, ready=False, serving=True, terminating=True),
                    ]
                )
            ],
            {"name": "http"},
            (f"{A}:8080",),
            id="ready-only",
        ),
        pytest.param(
            [make_slice([make_endpoint(A)]), make_slice([make_endpoint(A)], name="b")],
            {"name": "http"},
            (f"{A}:8080",),
            id="duplicate-across-slices",
        ),
        pytest.param(
            [{**make_slice([make_endpoint(A)]), "addressType": "IPv6"}],
            {"name": "http"},
            (),
            id="ipv6-slice-ignored",
        ),
        pytest.param(
            [make_slice([make_endpoint(A)])], {"name": "grpc"}, (), id="port-not-in-slice"
        ),
    ],
)
def test_ready_servers(
    slices: list[KubeObject], port: KubeObject, expected: tuple[str, ...]
) -> None:
    assert ready_servers(slices, port) == expected


P = "nginx.ingress.kubernetes.io/"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({}, ProxySettings(), id="ingress-nginx-defaults"),
        pytest.param(
            {P + "proxy-read-timeout": "3600", P + "proxy-send-timeout": "3600"},
            ProxySettings(read_timeout=3600, send_timeout=3600),
            id="deploy-base-websocket-timeouts",
        ),
        pytest.param(
            {P + "proxy-connect-timeout": "2", P + "proxy-body-size": "8m"},
            ProxySettings(connect_timeout=2, body_size="8m"),
            id="connect-and-body-size",
        ),
        pytest.param(
            {P + "proxy-read-timeout": "1h", P + "proxy-body-size": "lots"},
            ProxySettings(),
            id="malformed-keeps-defaults",
        ),
        pytest.param({P + "proxy-read-timeout": "0"}, ProxySettings(), id="zero-keeps-default"),
    ],
)
def test_proxy_settings(annotations: dict[str, str], expected: ProxySettings) -> None:
    assert proxy_settings(annotations) == expected


@pytest.mark.parametrize(
    ("path", "path_type", "expected"),
    [
        pytest.param("/api", PathType.PREFIX, ("= /api", "/api/"), id="prefix-element-wise"),
        pytest.param("/api/", PathType.PREFIX, ("= /api", "/api/"), id="prefix-trailing-slash"),
        pytest.param("/", PathType.PREFIX, ("/",), id="prefix-root"),
        pytest.param("/status", PathType.EXACT, ("= /status",), id="exact"),
    ],
)
def test_location_matches(path: str, path_type: PathType, expected: tuple[str, ...]) -> None:
    assert location_matches(path, path_type) == expected


def locations_of(plan: nginx_config.Plan, host: str) -> dict[str, str | None]:
    """location match -> upstream name, for one server."""
    server = next(s for s in plan.servers if host in s.names)
    return {loc.match: loc.backend.upstream for loc in server.locations}


def test_plan_for_deploy_base_routes_two_hosts_and_three_paths() -> None:
    plan = plan_ingresses(*harmonyflow_inputs([make_endpoint(A), make_endpoint(B, ready=False)]))
    http, ws = "harmonyflow-session-state-service-8080", "harmonyflow-session-state-service-8443"
    expected = {
        "= /api": http,
        "/api/": http,
        "= /health": http,
        "/health/": http,
        "= /ws": ws,
        "/ws/": ws,
    }
    assert [s.names for s in plan.servers] == [("_",), (API_HOST,), (WS_HOST,)]
    assert plan.servers[0].default
    for host in ("_", API_HOST, WS_HOST):
        assert locations_of(plan, host) == expected
    assert [(u.name, u.servers) for u in plan.upstreams] == [
        (http, (f"{A}:8080",)),
        (ws, (f"{A}:8443",)),
    ]
    location = plan.servers[1].locations[0]
    assert (location.proxy.read_timeout, location.proxy.send_timeout) == (3600, 3600)


@pytest.mark.parametrize(
    ("ingresses", "services", "host", "expected"),
    [
        pytest.param(
            [make_ingress()],
            [],
            API_HOST,
            {"= /api": None, "/api/": None},
            id="missing-service-is-503",
        ),
        pytest.param(
            [make_ingress(rules={API_HOST: [make_path("/api", port=81)]})],
            [make_service()],
            API_HOST,
            {"= /api": None, "/api/": None},
            id="missing-service-port-is-503",
        ),
        pytest.param(
            [
                make_ingress("old", {API_HOST: [make_path("/a", "old-svc")]}),
                make_ingress(
                    "new",
                    {API_HOST: [make_path("/a", "new-svc", path_type="Exact")]},
                    created="2026-01-02T00:00:00Z",
                ),
            ],
            [make_service("old-svc"), make_service("new-svc")],
            API_HOST,
            {"= /a": "harmonyflow-new-svc-80", "/a/": "harmonyflow-old-svc-80"},
            id="exact-beats-prefix-on-the-same-path",
        ),
        pytest.param(
            [
                make_ingress(
                    "young",
                    {API_HOST: [make_path("/a", "young-svc")]},
                    created="2026-01-02T00:00:00Z",
                ),
                make_ingress("old", {API_HOST: [make_path("/a", "old-svc")]}),
            ],
            [make_service("old-svc"), make_service("young-svc")],
            API_HOST,
            {"= /a": "harmonyflow-old-svc-80", "/a/": "harmonyflow-old-svc-80"},
            id="oldest-ingress-wins-a-tie",
        ),
        pytest.param(
            [make_ingress(ingress_class="alb")], [make_service()], "_", {}, id="other-class"
        ),
        pytest.param(
            [
                make_ingress(
                    ingress_class=None, annotations={"kubernetes.io/ingress.class": "nginx"}
                )
            ],
            [make_service()],
            API_HOST,
            {
                "= /api": "harmonyflow-session-state-service-80",
                "/api/": "harmonyflow-session-state-service-80",
            },
            id="legacy-class-annotation",
        ),
        pytest.param(
            [make_ingress(rules={API_HOST: [make_path("/a b"), make_path("/ok")]})],
            [make_service()],
            API_HOST,
            {
                "= /ok": "harmonyflow-session-state-service-80",
                "/ok/": "harmonyflow-session-state-service-80",
            },
            id="unsafe-path-skipped",
        ),
    ],
)
def test_plan_locations(
    ingresses: list[KubeObject],
    services: list[KubeObject],
    host: str,
    expected: dict[str, str | None],
) -> None:
    slices = [make_slice([make_endpoint(A)], service=s["metadata"]["name"]) for s in services]
    assert locations_of(plan_ingresses(ingresses, services, slices), host) == expected


def test_ingress_being_deleted_is_not_served() -> None:
    ingress = make_ingress()
    ingress["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    plan = plan_ingresses([ingress], [make_service()], [make_slice([make_endpoint(A)])])
    assert [s.names for s in plan.servers] == [("_",)]
    assert plan.upstreams == ()


def test_default_server_serves_host_less_rules_before_the_first_host() -> None:
    ingresses, services, slices = multi_ingress_inputs()
    plan = plan_ingresses(ingresses, services, slices)
    default = locations_of(plan, "_")
    assert set(default) == {"= /status", "/", "= /cart", "/cart/"}  # shop is the first host
    assert "admin.example.com" in {n for s in plan.servers for n in s.names}


def test_no_ready_endpoint_answers_503_json_in_the_config() -> None:
    text = render_config(
        *GOLDEN_CASES["no_endpoints"], "127.0.0.1", 18080, GOLDEN_PATHS, worker_user=None
    )
    assert "\n    upstream " not in text
    assert f"return 503 '{NO_ENDPOINTS_BODY}';" in text
    assert "\nuser " not in text


def test_every_location_upgrades_websockets_and_retries_idempotent_requests() -> None:
    text = render_config(*GOLDEN_CASES["harmonyflow"], "127.0.0.1", 18080, GOLDEN_PATHS)
    http_block = text[text.index("http {") :]
    for line in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_next_upstream error timeout;",
        "client_max_body_size 1m;",
        "keepalive 320;",
    ):
        assert line in http_block
    assert text.count("proxy_read_timeout 3600s;") == 18  # 6 locations x 3 servers


@pytest.mark.parametrize(
    ("upstream_bind", "lines"),
    [
        pytest.param(INGRESS_POD_ADDRESS, [f"    proxy_bind {INGRESS_POD_ADDRESS};"], id="bound"),
        pytest.param(None, [], id="the-kernels-choice"),
    ],
)
def test_connections_to_the_pods_leave_from_the_bind_address(
    upstream_bind: str | None, lines: list[str]
) -> None:
    text = render_config(
        *GOLDEN_CASES["harmonyflow"], "127.0.0.1", 18080, GOLDEN_PATHS, upstream_bind=upstream_bind
    )
    assert [line for line in text.splitlines() if "proxy_bind" in line] == lines


def test_the_ingress_pod_address_is_no_other_infrastructure_address() -> None:
    """Its own address in 127.0.3.0/24: NetworkPolicy takes whoever connects from it for
    the ingress-nginx controller pod."""
    taken = {
        clusterdns.DEFAULT_ENDPOINT.host,
        *ControlPlaneSettings().cluster_dns,
        *(node.endpoint.host for node in postgres.DEFAULT_NODES),
        *redis_cluster.DEFAULT_HOSTS,
        *rabbitmq_cluster.DEFAULT_HOSTS,
        monitoring.DEFAULT_PROMETHEUS.host,
        monitoring.DEFAULT_ALERTMANAGER.host,
        "127.0.0.1",
    }
    assert INGRESS_POD_ADDRESS.startswith("127.0.3.")
    assert INGRESS_POD_ADDRESS not in taken


def test_output_is_deterministic_whatever_the_input_order() -> None:
    ingresses, services, slices = multi_ingress_inputs()
    expected = render_config(ingresses, services, slices, "127.0.0.1", 18080, GOLDEN_PATHS)
    rng = random.Random(3)
    for _ in range(5):
        shuffled = [list(items) for items in (ingresses, services, slices)]
        for items in shuffled:
            rng.shuffle(items)
        for piece in shuffled[2]:
            rng.shuffle(piece["endpoints"])
        text = render_config(
            shuffled[0], shuffled[1], shuffled[2], "127.0.0.1", 18080, GOLDEN_PATHS
        )
        assert text == expected


def test_doctests() -> None:
    assert doctest.testmod(nginx_config).failed == 0


# ---- golden files, and nginx's own opinion of them ----


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_config_matches_golden_file(case: str) -> None:
    """Regenerate with UPDATE_GOLDEN=1 after a deliberate change."""
    text = render_config(
        *GOLDEN_CASES[case], "127.0.0.1", 18080, GOLDEN_PATHS, upstream_bind=INGRESS_POD_ADDRESS
    )
    golden = GOLDEN_DIR / f"nginx_{case}.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def nginx_test(text: str, paths: NginxPaths) -> subprocess.CompletedProcess[str]:
    for directory in paths.directories():
        directory.mkdir(parents=True, exist_ok=True)
    paths.conf.write_text(text, encoding="utf-8")
    return subprocess.run(
        [
            str(NGINX),
            "-t",
            "-p",
            f"{paths.prefix}/",
            "-c",
            str(paths.conf),
            "-e",
            str(paths.error_log),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed (apt-get install nginx)")
@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_nginx_accepts_the_config(case: str, tmp_path: Path) -> None:
    paths = NginxPaths.under(tmp_path)
    worker_user = "root" if os.geteuid() == 0 else None
    text = render_config(
        *GOLDEN_CASES[case],
        "127.0.0.1",
        18080,
        paths,
        worker_user=worker_user,
        upstream_bind=INGRESS_POD_ADDRESS,
    )
    result = nginx_test(text, paths)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed (apt-get install nginx)")
def test_nginx_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check itself works: what `nginx -t` refuses, it reports."""
    paths = NginxPaths.under(tmp_path)
    result = nginx_test("events {}\nhttp { bogus; }\n", paths)
    assert result.returncode != 0
    assert 'unknown directive "bogus"' in result.stderr


def test_what_cannot_be_served_is_skipped_and_said_so() -> None:
    ingress = make_ingress(
        rules={
            "Bad_Host": [make_path("/a")],
            API_HOST: [make_path('/a";'), make_path("/b", port="No Such"), make_path("/ok")],
        }
    )
    plan = plan_ingresses([ingress], [make_service()], [make_slice([make_endpoint(A)])])
    assert plan.skipped == (
        "harmonyflow/web: invalid host 'Bad_Host'",
        "harmonyflow/web: path '/a\";': unsupported characters",
        "harmonyflow/web: path '/b': no service port",
    )
    assert set(locations_of(plan, API_HOST)) == {"= /ok", "/ok/"}
    text = render_config([ingress], [make_service()], [], "127.0.0.1", 18080, GOLDEN_PATHS)
    assert "# skipped: harmonyflow/web: path '/b': no service port" in text

"""A pod's resolv.conf as the kubelet composes it from dnsPolicy, dnsConfig and --cluster-dns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.kube.kubelet.dns import (
    MAX_SEARCH_LIST_CHARS,
    render_resolv_conf,
    resolv_conf_path,
)

DNS = ["127.0.3.53"]
CLUSTER = (
    "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 127.0.3.53\n"
    "options ndots:5\n"
)


@pytest.mark.parametrize(
    ("spec", "cluster_dns", "expected"),
    [
        pytest.param({}, DNS, CLUSTER, id="default-is-cluster-first"),
        pytest.param({"dnsPolicy": "ClusterFirst"}, DNS, CLUSTER, id="cluster-first"),
        pytest.param(
            {"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
            DNS,
            CLUSTER,
            id="cluster-first-with-host-net",
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirst", "hostNetwork": True}, DNS, None, id="host-net-falls-back"
        ),
        pytest.param({"dnsPolicy": "Default"}, DNS, None, id="default-inherits-host"),
        pytest.param({}, [], None, id="no-cluster-dns-falls-back"),
        pytest.param(
            {},
            ["127.0.3.53", "127.0.3.54"],
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 127.0.3.53\nnameserver 127.0.3.54\noptions ndots:5\n",
            id="two-cluster-dns",
        ),
        pytest.param(
            {
                "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["10.0.0.2"], "searches": ["corp.example"]},
            },
            DNS,
            "search corp.example\nnameserver 10.0.0.2\n",
            id="none-only-dns-config",
        ),
        pytest.param({"dnsPolicy": "None"}, DNS, "", id="none-without-config-is-empty"),
        pytest.param(
            {
                "dnsConfig": {
                    "nameservers": ["127.0.3.53", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
                    "searches": ["cluster.local", "corp.example", "corp.example"],
                    "options": [
                        {"name": "ndots", "value": "2"},
                        {"name": "edns0"},
                        {"name": "timeout", "value": "1"},
                    ],
                }
            },
            DNS,
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "nameserver 127.0.3.53\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
            "options ndots:2 edns0 timeout:1\n",
            id="dns-config-merged-deduped-cut-to-three-servers",
        ),
        pytest.param(
            {"dnsConfig": {"options": [{"name": "ndots", "value": "1"}, {"name": "ndots"}]}},
            DNS,
            CLUSTER.replace("ndots:5", "ndots"),
            id="later-option-wins",
        ),
    ],
)
def test_render_resolv_conf(spec: dict[str, Any], cluster_dns: list[str], expected: str) -> None:
    assert render_resolv_conf(spec, "shop", cluster_dns) == expected


def test_cluster_domain_is_a_parameter() -> None:
    rendered = render_resolv_conf({}, "default", DNS, cluster_domain="sandbox.internal.")
    assert rendered is not None
    assert rendered.splitlines()[0] == (
        "search default.svc.sandbox.internal svc.sandbox.internal sandbox.internal"
    )


def _search_line(spec: dict[str, Any]) -> list[str]:
    rendered = render_resolv_conf(spec, "shop", DNS)
    assert rendered is not None
    return rendered.splitlines()[0].removeprefix("search ").split(" ")


def test_search_paths_are_cut_to_thirty_two() -> None:
    extra = [f"d{i}.example" for i in range(40)]
    searches = _search_line({"dnsConfig": {"searches": extra}})
    assert len(searches) == 32
    assert searches[:4] == [
        "shop.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "d0.example",
    ]


def test_search_line_is_cut_from_the_end_to_2048_characters() -> None:
    long = ["a" * 60 + f".d{i:02d}.example" for i in range(30)]  # 30 x 72 chars
    searches = _search_line({"dnsConfig": {"searches": long}})
    assert len(" ".join(searches)) <= MAX_SEARCH_LIST_CHARS
    assert searches[:3] == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert searches[-1] == long[len(searches) - 4]
    assert len(" ".join([*searches, long[len(searches) - 3]])) > MAX_SEARCH_LIST_CHARS


def test_search_domains_longer_than_253_are_dropped() -> None:
    searches = _search_line({"dnsConfig": {"searches": ["x" * 254, "ok.example"]}})
    assert searches[-1] == "ok.example" and all(len(s) <= 253 for s in searches)


def test_the_file_lives_beside_the_pod_logs(tmp_path: Path) -> None:
    path = resolv_conf_path(tmp_path, "shop", "api-1", "u-1")
    assert path == tmp_path / "pods" / "shop_api-1_u-1" / "etc-resolv.conf"

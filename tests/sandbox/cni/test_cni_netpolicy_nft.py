"""NetworkPolicy as nftables (sandbox.cni.netpolicy_nft): the text by table, then for real.

The real tests (root and nft only) load the seed's rendering into a throwaway
table in check mode, and apply one small policy set on 127.0.9.x to show with
sockets that an allowed connection connects and a denied one times out. Every
table they create is named `hftest_np_<pid>` and deleted in a finally.
"""

from __future__ import annotations

import contextlib
import doctest
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

import sandbox.cni.netpolicy_nft
from resilience.manifests import render
from sandbox.cni.netpolicy import (
    AddressBlock,
    Allowance,
    CompiledPolicies,
    IsolatedPod,
    PolicyNamespace,
    PolicyPod,
    PortMatch,
    compile_policies,
)
from sandbox.cni.netpolicy_nft import allowance_rules, render_policy_chain
from tests.builders import REPO_ROOT

TABLE = f"hftest_np_{os.getpid()}"
needs_root_and_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft"
)


def allow(
    cidr: str,
    protocol: str | None = None,
    first: int | None = None,
    last: int | None = None,
    excepts: tuple[str, ...] = (),
) -> Allowance:
    return Allowance(
        AddressBlock(cidr, excepts), PortMatch(protocol, first, last if last is not None else first)
    )


RULE_CASES = [
    pytest.param([], "ingress", [], id="nothing-allowed-no-rules"),
    pytest.param([allow("0.0.0.0/0")], "ingress", [""], id="everything-is-an-empty-match"),
    pytest.param(
        [allow("127.0.2.5/32", "TCP", 8080), allow("127.0.2.6/32", "TCP", 8080)],
        "ingress",
        ["ip saddr { 127.0.2.5, 127.0.2.6 } tcp dport 8080"],
        id="peers-on-one-port-share-a-set",
    ),
    pytest.param(
        [allow("127.0.0.0/8", "TCP", 5432), allow("127.0.2.5/32", "TCP", 5432)],
        "egress",
        ["ip daddr 127.0.0.0/8 tcp dport 5432"],
        id="overlapping-peers-merged",
    ),
    pytest.param(
        [allow("127.0.0.0/8", "TCP", 5432), allow("127.0.0.0/8", "TCP", 6379)],
        "egress",
        ["ip daddr 127.0.0.0/8 tcp dport { 5432, 6379 }"],
        id="ports-to-one-peer-share-a-set",
    ),
    pytest.param(
        [allow("127.0.3.10/32", "UDP", 53), allow("127.0.3.10/32", "TCP", 53)],
        "egress",
        ["ip daddr 127.0.3.10 tcp dport 53", "ip daddr 127.0.3.10 udp dport 53"],
        id="one-rule-per-protocol",
    ),
    pytest.param(
        [
            allow("0.0.0.0/0", "TCP", 8000, 8100),
            allow("0.0.0.0/0", "TCP", 8050, 8200),
            allow("0.0.0.0/0", "TCP", 8201),
        ],
        "ingress",
        ["tcp dport 8000-8201"],
        id="overlapping-and-adjacent-ranges-merged",
    ),
    pytest.param(
        [allow("0.0.0.0/0", "SCTP"), allow("0.0.0.0/0", "SCTP", 9)],
        "ingress",
        ["meta l4proto sctp"],
        id="every-port-of-a-protocol",
    ),
    pytest.param(
        [allow("10.0.0.0/16", "TCP", 443, excepts=("10.0.1.0/24", "10.0.2.0/24"))],
        "ingress",
        ["ip saddr 10.0.0.0/16 ip saddr != { 10.0.1.0/24, 10.0.2.0/24 } tcp dport 443"],
        id="ipblock-except",
    ),
]


@pytest.mark.parametrize(("allowed", "direction", "rules"), RULE_CASES)
def test_allowances_render_as_grouped_matches(
    allowed: list[Allowance], direction: Any, rules: list[str]
) -> None:
    assert allowance_rules(allowed, direction) == rules


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(sandbox.cni.netpolicy_nft).failed == 0


def test_pods_with_the_same_allowances_share_one_chain() -> None:
    allowed = frozenset({allow("127.0.2.9/32", "TCP", 8080)})
    compiled = CompiledPolicies(
        ingress=(
            IsolatedPod("a", "one", "127.0.2.5", allowed),
            IsolatedPod("a", "two", "127.0.2.6", allowed),
            IsolatedPod("a", "three", "127.0.2.7", frozenset()),
        )
    )
    text = render_policy_chain(compiled)
    assert text.count("chain netpolicy_ingress_") == 2
    assert (
        "127.0.2.5 : jump netpolicy_ingress_0,\n\t\t127.0.2.6 : jump netpolicy_ingress_0," in text
    )
    assert "127.0.2.7 : jump netpolicy_ingress_1\n" in text


def test_without_isolated_pods_only_the_base_chain_is_left() -> None:
    text = render_policy_chain(CompiledPolicies(), chain="np")
    assert text == (
        "chain np {\n"
        "\ttype filter hook input priority filter; policy accept;\n"
        "\tct state established,related accept\n"
        "\tct state != new accept\n"
        '\tip saddr 127.0.0.1 accept comment "from the node: always allowed"\n'
        '\tip daddr 127.0.0.1 accept comment "to the node: always allowed"\n'
        "}"
    )


SEED_NAMESPACES = tuple(
    PolicyNamespace(name, {"name": name}) for name in ("ingress-nginx", "monitoring", "linkerd")
)
SEED_PODS = (
    PolicyPod("harmonyflow", "session-state-0", "127.0.2.5", {"app": "session-state-service"}),
    PolicyPod("harmonyflow", "session-state-1", "127.0.2.6", {"app": "session-state-service"}),
    PolicyPod("harmonyflow", "debug", "127.0.2.7", {"app": "debug"}),
    PolicyPod("kube-system", "coredns", "127.0.3.10", {"k8s-app": "kube-dns"}),
    PolicyPod("ingress-nginx", "controller", "127.0.2.20"),
    PolicyPod("linkerd", "destination", "127.0.2.22"),
)


def seed_compiled(kustomization: str) -> CompiledPolicies:
    rendered = render(REPO_ROOT / "deploy" / kustomization)
    policies = [dict(o.body) for o in rendered.of_kind("NetworkPolicy")]
    return compile_policies(policies, SEED_PODS, SEED_NAMESPACES)


SEED_SANDBOX = """\
chain netpolicy_egress_0 {
\t# harmonyflow/session-state-0 127.0.2.5
\t# harmonyflow/session-state-1 127.0.2.6
\tip daddr 127.0.0.0/8 tcp dport { 5432, 5672, 6379 } return
\tip daddr 127.0.2.22 tcp dport 4140 return
\tip daddr 127.0.3.10 tcp dport 53 return
\tip daddr 127.0.3.10 udp dport 53 return
\tdrop comment "egress: no NetworkPolicy allows it"
}
chain netpolicy_egress_1 {
\t# harmonyflow/debug 127.0.2.7
\tip daddr 127.0.2.22 tcp dport 4140 return
\tdrop comment "egress: no NetworkPolicy allows it"
}
chain netpolicy_ingress_0 {
\t# harmonyflow/session-state-0 127.0.2.5
\t# harmonyflow/session-state-1 127.0.2.6
\tip saddr 127.0.2.20 tcp dport { 8080, 8443 } accept
\tip saddr 127.0.2.22 tcp dport 4143 accept
\tdrop comment "ingress: no NetworkPolicy allows it"
}
chain netpolicy_ingress_1 {
\t# harmonyflow/debug 127.0.2.7
\tip saddr 127.0.2.22 tcp dport 4143 accept
\tdrop comment "ingress: no NetworkPolicy allows it"
}
chain netpolicy {
\ttype filter hook input priority filter; policy accept;
\tct state established,related accept
\tct state != new accept
\tip saddr 127.0.0.1 accept comment "from the node: always allowed"
\tip daddr 127.0.0.1 accept comment "to the node: always allowed"
\tip saddr . ip daddr { 127.0.2.5 . 127.0.2.5, 127.0.2.6 . 127.0.2.6, 127.0.2.7 . 127.0.2.7 } \
accept comment "a pod to itself"
\tip saddr vmap {
\t\t127.0.2.5 : jump netpolicy_egress_0,
\t\t127.0.2.6 : jump netpolicy_egress_0,
\t\t127.0.2.7 : jump netpolicy_egress_1
\t}
\tip daddr vmap {
\t\t127.0.2.5 : jump netpolicy_ingress_0,
\t\t127.0.2.6 : jump netpolicy_ingress_0,
\t\t127.0.2.7 : jump netpolicy_ingress_1
\t}
}"""


def test_the_seeds_policies_render_to_the_expected_chains() -> None:
    assert render_policy_chain(seed_compiled("overlays/sandbox")) == SEED_SANDBOX


# ---- for real ----


def nft(script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nft", *flags, "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def table_script(chains: str) -> str:
    return f"table inet {TABLE} {{\n{chains}\n}}\n"


@needs_root_and_nft
@pytest.mark.parametrize("kustomization", ["overlays/sandbox", "overlays/staging", "base"])
def test_nft_accepts_the_seeds_rendering(kustomization: str) -> None:
    checked = nft(table_script(render_policy_chain(seed_compiled(kustomization))), "-c")
    assert checked.returncode == 0, checked.stderr


CLIENT, STRANGER, SERVER, OTHER_SERVER = "127.0.9.10", "127.0.9.11", "127.0.9.20", "127.0.9.21"


@contextlib.contextmanager
def listening(address: str) -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind((address, 0))
        server.listen(8)
        yield server
    finally:
        server.close()


def connects(source: str, destination: tuple[str, int]) -> bool:
    """A TCP connection from `source` (a "pod IP") within 1 s; False on a timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.bind((source, 0))
        client.settimeout(1.0)
        try:
            client.connect(destination)
        except TimeoutError:
            return False
        client.sendall(b"ping")  # an established flow passes both ways
        return True


def live_policies(port: int) -> list[dict[str, Any]]:
    def spec(name: str, **body: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "hftest"}, "spec": body}

    app = lambda value: {"matchLabels": {"app": value}}  # noqa: E731
    return [
        spec("default-deny", podSelector={}, policyTypes=["Ingress", "Egress"]),
        spec(
            "server-in",
            podSelector=app("server"),
            ingress=[{"from": [{"podSelector": app("client")}], "ports": [{"port": port}]}],
        ),
        spec("other-in", podSelector=app("other"), ingress=[{}]),
        spec(
            "client-out",
            podSelector=app("client"),
            policyTypes=["Egress"],
            egress=[{"to": [{"podSelector": app("server")}], "ports": [{"port": "web"}]}],
        ),
        spec("stranger-out", podSelector=app("stranger"), policyTypes=["Egress"], egress=[{}]),
    ]


@needs_root_and_nft
@pytest.mark.timeout(60)
def test_an_applied_policy_lets_the_allowed_connection_through_and_drops_the_rest() -> None:
    with listening(SERVER) as server, listening(OTHER_SERVER) as other:
        port = server.getsockname()[1]
        other_port = other.getsockname()[1]
        pods = [
            PolicyPod("hftest", "client", CLIENT, {"app": "client"}),
            PolicyPod("hftest", "stranger", STRANGER, {"app": "stranger"}),
            PolicyPod("hftest", "server", SERVER, {"app": "server"}, {"web": (port, "TCP")}),
            PolicyPod(
                "hftest", "other", OTHER_SERVER, {"app": "other"}, {"web": (other_port, "TCP")}
            ),
        ]
        compiled = compile_policies(live_policies(port), pods, [])
        applied = nft(table_script(render_policy_chain(compiled)))
        assert applied.returncode == 0, applied.stderr
        try:
            assert connects(CLIENT, (SERVER, port)), "client -> server: allowed both ways"
            assert not connects(STRANGER, (SERVER, port)), "stranger -> server: not in its ingress"
            assert not connects(CLIENT, (OTHER_SERVER, other_port)), (
                "client -> other: not in its egress"
            )
            assert connects(STRANGER, (OTHER_SERVER, other_port)), (
                "stranger -> other: open both ways"
            )
            assert connects("127.0.0.1", (SERVER, port)), "the node -> server: always allowed"
        finally:
            deleted = subprocess.run(
                ["nft", "delete", "table", "inet", TABLE],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert deleted.returncode == 0, deleted.stderr

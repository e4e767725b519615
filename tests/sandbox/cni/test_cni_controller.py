"""The pod network's controller: which pods' addresses its rules may name."""

from __future__ import annotations

import pytest

from sandbox.cni.controller import attached_pods


def pod(uid: str, ip: str = "", phase: str = "Running") -> dict[str, object]:
    status: dict[str, object] = {"phase": phase}
    if ip:
        status |= {"podIP": ip, "podIPs": [{"ip": ip}]}
    return {"metadata": {"uid": uid, "name": uid}, "status": status}


@pytest.mark.parametrize(
    ("held", "ip", "kept"),
    [
        pytest.param({"u": "127.0.2.5"}, "127.0.2.5", True, id="held-by-the-pod"),
        pytest.param({}, "127.0.2.5", False, id="released-node-powered-off"),
        pytest.param({"u": "127.0.2.9"}, "127.0.2.5", False, id="the-pod-holds-another"),
        pytest.param({}, "", True, id="no-ip-yet"),
    ],
)
def test_only_an_address_the_pod_still_holds_is_the_pods(
    held: dict[str, str], ip: str, kept: bool
) -> None:
    [seen] = attached_pods([pod("u", ip)], held.get)
    status = seen["status"]
    assert isinstance(status, dict)
    assert ("podIP" in status) == (kept and bool(ip))
    assert ("podIPs" in status) == (kept and bool(ip))
    assert status["phase"] == "Running"  # the pod stays: chaos may still select it

"""NetworkPolicies: the live ones in the namespace are deploy/base's.

What the pods may reach is part of the configuration under test: an allow rule
gone breaks the service, an extra or widened one hides a partition a fault should
have shown. The check compares every live NetworkPolicy with deploy/base's (an
egress CIDR may be the one an overlay of deploy/ sets: the sandbox's databases are
on loopback) and names each policy and field that differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import OVERLAYS
from resilience.manifests import RenderedManifests, render
from resilience.suites.networkpolicy import intended_network_policies, network_policy_drift
from resilience.targets.live import LiveTarget

pytestmark = pytest.mark.resilience


@pytest.mark.timeout(60)
def test_live_network_policies_are_deploy_bases(
    target: LiveTarget, base_manifests: RenderedManifests, deploy_dir: Path
) -> None:
    overlays = [render(deploy_dir / "overlays" / name) for name in OVERLAYS]
    intended = intended_network_policies(base_manifests, overlays, target.namespace)
    drift = network_policy_drift(target.read_network_policies(), intended)
    assert not drift, "the live NetworkPolicies are not deploy/base's:\n" + "\n".join(
        d.message for d in drift
    )

"""Conformance: deploy/ carries the seed's values, and overlays change only what they may.

Needs no cluster. Run with `pytest -m conformance`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import OVERLAYS
from resilience.conformance import SEED_VALUES, SeedValue, check_overlay, check_seed_values
from resilience.manifests import RenderedManifests, render
from resilience.policy import IntendedPolicy, policy_from_manifests

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, deploy_dir: Path) -> RenderedManifests:
    return render(deploy_dir / "overlays" / request.param)


def test_base_renders_to_valid_objects(base_manifests: RenderedManifests) -> None:
    assert base_manifests.objects, "deploy/base renders no objects"


@pytest.mark.parametrize("row", SEED_VALUES, ids=lambda row: row.id)
def test_base_carries_seed_value(base_manifests: RenderedManifests, row: SeedValue) -> None:
    findings = check_seed_values(base_manifests, [row])
    assert not findings, "\n".join(map(str, findings))


def test_overlay_changes_only_what_it_may(
    base_manifests: RenderedManifests, overlay: RenderedManifests
) -> None:
    findings = check_overlay(base_manifests, overlay)
    assert not findings, "\n".join(map(str, findings))


def test_overlay_keeps_every_limit_under_test(
    intended_policy: IntendedPolicy, overlay: RenderedManifests
) -> None:
    observed = policy_from_manifests(overlay)
    comparable = dataclasses.replace(
        observed, hpa=dataclasses.replace(observed.hpa, behavior=intended_policy.hpa.behavior)
    )
    assert comparable == intended_policy, (
        f"{overlay.directory}: the intended policy differs from deploy/base beyond HPA behaviour"
    )


def test_every_zone_gets_a_replica(intended_policy: IntendedPolicy) -> None:
    zones = len(intended_policy.zones.zones)
    assert zones >= 2, "Deployment: nodeAffinity names fewer than two zones"
    assert intended_policy.rollout.replicas >= zones, (
        f"Deployment spec.replicas {intended_policy.rollout.replicas} < {zones} zones"
    )
    assert intended_policy.hpa.min_replicas >= zones, (
        f"HorizontalPodAutoscaler spec.minReplicas {intended_policy.hpa.min_replicas} "
        f"< {zones} zones"
    )


def test_disruption_budget_matches_the_rollout_budget(intended_policy: IntendedPolicy) -> None:
    """A drain must never take more pods at once than a rollout may."""
    budget = intended_policy.disruption
    assert budget is not None, "no PodDisruptionBudget selects the Deployment's pods"
    replicas = intended_policy.rollout.replicas
    desired = budget.desired_healthy(replicas)
    min_available = intended_policy.rollout.fenceposts.min_available
    assert desired >= min_available, (
        f"PodDisruptionBudget/{budget.name}: keeps {desired} of {replicas} pods healthy, "
        f"fewer than the rollout's minimum available {min_available}"
    )
    assert desired < replicas, (
        f"PodDisruptionBudget/{budget.name}: needs {desired} of {replicas} pods healthy, "
        "so no voluntary eviction can ever pass and drains would hang"
    )

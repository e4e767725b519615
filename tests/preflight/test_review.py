"""The SelfSubjectAccessReview loop against a fake authorization API: every need asked
once, missing ones refused in one line, a missing API a warning, every wait bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from resilience.errors import InvalidInputError
from resilience.preflight.needs import Needs, of
from resilience.preflight.permissions import Permission
from resilience.preflight.review import UNSERVED, PermissionsMissingError, ask, check
from tests.preflight.fake_authorization import FakeAuthorization, write_kubeconfig

EVICT = Permission("create", "", "pods", "eviction", "harmonyflow")
SCALE = Permission("patch", "apps", "deployments", "scale", "harmonyflow")
NODES = Permission("patch", "", "nodes")
CANARY = Permission("delete", "apps", "deployments", "", "harmonyflow", "web-chaos-canary")
EVERYWHERE = Permission("list", "", "pods", "", "")
NEEDS = of([EVICT, SCALE, NODES, CANARY, EVERYWHERE], "test")


@pytest.fixture
def fake() -> Iterator[FakeAuthorization]:
    server = FakeAuthorization()
    yield server
    server.close()


@pytest.fixture
def api(fake: FakeAuthorization, tmp_path: Path) -> Iterator[client.ApiClient]:
    path = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    made: client.ApiClient = config.new_client_from_config(config_file=str(path))
    yield made
    made.close()


def test_every_need_is_asked_once_with_its_attributes(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    review = check(api, NEEDS, warn=pytest.fail)
    assert review.served and set(review.answers) == NEEDS.permissions
    asked = sorted(fake.reviews, key=lambda a: sorted(a.items()))
    assert {"verb": "patch", "group": "", "resource": "nodes", "namespace": ""} in asked
    assert {
        "verb": "create",
        "group": "",
        "resource": "pods",
        "subresource": "eviction",
        "namespace": "harmonyflow",
    } in asked
    assert {
        "verb": "delete",
        "group": "apps",
        "resource": "deployments",
        "namespace": "harmonyflow",
        "name": "web-chaos-canary",
    } in asked
    assert len(asked) == 5


def test_missing_permissions_are_refused_in_one_line(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.denied = {
        ("create", "pods/eviction", "harmonyflow"),
        ("patch", "deployments/scale", "harmonyflow"),
    }
    with pytest.raises(PermissionsMissingError) as refused:
        check(api, NEEDS, warn=pytest.fail)
    assert str(refused.value) == (
        "preflight: cannot create pods/eviction in harmonyflow;"
        " cannot patch deployments/scale in harmonyflow"
    )
    assert isinstance(refused.value, InvalidInputError)  # exit 2, like the interlocks


def test_unknown_activities_are_refused_even_when_everything_is_allowed(
    api: client.ApiClient,
) -> None:
    with pytest.raises(PermissionsMissingError, match=r"unknown to the permission table: x\.y"):
        check(api, NEEDS | Needs(unknown=("x.y",)), warn=pytest.fail)


def test_no_authorization_api_is_one_warning_and_the_run_goes_on(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.status = 404
    warnings: list[str] = []
    review = check(api, NEEDS, warn=warnings.append)
    assert not review.served
    assert warnings == [UNSERVED]


def test_no_authorization_api_still_refuses_unknown_activities(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.status = 404
    warnings: list[str] = []
    with pytest.raises(PermissionsMissingError, match="unknown to the permission table"):
        check(api, NEEDS | Needs(unknown=("x.y",)), warn=warnings.append)
    assert warnings == [UNSERVED]


def test_forbidden_to_ask_is_a_missing_permission(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.status = 403
    with pytest.raises(PermissionsMissingError) as refused:
        check(api, NEEDS, warn=pytest.fail)
    assert str(refused.value) == "preflight: cannot create selfsubjectaccessreviews"


def test_a_broken_authorization_api_fails_closed(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.status = 500
    with pytest.raises(InvalidInputError, match=r"SelfSubjectAccessReview for .* failed: 500"):
        check(api, NEEDS, warn=pytest.fail)


def test_a_silent_authorization_api_is_bounded_by_the_review_timeout(
    fake: FakeAuthorization, api: client.ApiClient
) -> None:
    fake.delay = 2.0
    began = time.monotonic()
    with pytest.raises(InvalidInputError, match="no answer"):
        ask(api, [NODES], timeout=0.3)
    assert time.monotonic() - began < 1.5


def test_the_whole_check_is_bounded_by_its_budget(api: client.ApiClient) -> None:
    ticks = iter(range(0, 1000, 10))  # each review seems to take 10 s
    with pytest.raises(InvalidInputError, match="longer than 15 s"):
        ask(api, NEEDS.permissions, budget=15, clock=lambda: float(next(ticks)))

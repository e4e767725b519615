from __future__ import annotations

import pytest

from sandbox.kube.errors import ApiError
from sandbox.kube.selectors import parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param("app=web", True, id="equals"),
        pytest.param("app==web", True, id="double-equals"),
        pytest.param("app!=web", False, id="not-equals"),
        pytest.param("app in (api,web)", True, id="in"),
        pytest.param("app notin (web)", False, id="notin"),
        pytest.param("tier", True, id="exists"),
        pytest.param("!tier", False, id="not-exists"),
        pytest.param("app=web,tier in (back)", False, id="and"),
        pytest.param("missing!=x", True, id="not-equals-absent-key"),
        pytest.param("", True, id="empty-matches-all"),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("bad", ["app in (web", "=web", "a b c"])
def test_bad_label_selector_is_400(bad: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_label_selector(bad)
    assert error.value.code == 400


def test_field_selectors_are_limited_to_supported_fields() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Failed", "pods").matches(pod)
    assert not parse_field_selector("metadata.name=q", "pods").matches(pod)
    with pytest.raises(ApiError, match=r"field label not supported: spec\.nodeName"):
        parse_field_selector("spec.nodeName=n1", "configmaps")

from __future__ import annotations

from typing import Any

import pytest

from sandbox.kube.errors import ApiError
from sandbox.kube.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)

POD_SPEC: dict[str, Any] = {
    "spec": {
        "unschedulable": False,
        "containers": [
            {
                "name": "web",
                "image": "a:1",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80}],
            },
            {"name": "side", "image": "s:1"},
        ],
        "tolerations": [{"key": "x"}],
    },
    "metadata": {"finalizers": ["a"], "labels": {"k": "v"}},
}


@pytest.mark.parametrize(
    ("patch", "patch_type", "path", "expected"),
    [
        pytest.param(
            {"spec": {"unschedulable": True}},
            STRATEGIC_MERGE_PATCH,
            ("spec", "unschedulable"),
            True,
            id="cordon",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "side", "image": "s:2"}]}},
            STRATEGIC_MERGE_PATCH,
            ("spec", "containers"),
            [POD_SPEC["spec"]["containers"][0], {"name": "side", "image": "s:2"}],
            id="containers-merge-by-name",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}},
            STRATEGIC_MERGE_PATCH,
            ("spec", "containers", 0, "env"),
            [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            id="env-by-name",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
            STRATEGIC_MERGE_PATCH,
            ("spec", "containers", -1, "name"),
            "web",
            id="delete-directive",
        ),
        pytest.param(
            {"spec": {"tolerations": [{"key": "y"}]}},
            STRATEGIC_MERGE_PATCH,
            ("spec", "tolerations"),
            [{"key": "y"}],
            id="no-merge-key-replaces",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["b"]}},
            STRATEGIC_MERGE_PATCH,
            ("metadata", "finalizers"),
            ["a", "b"],
            id="finalizers-set-merge",
        ),
        pytest.param(
            {"metadata": {"labels": {"k": None}}},
            STRATEGIC_MERGE_PATCH,
            ("metadata", "labels"),
            {},
            id="null-deletes",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "only"}]}},
            MERGE_PATCH,
            ("spec", "containers"),
            [{"name": "only"}],
            id="merge-patch-replaces-lists",
        ),
        pytest.param(
            [{"op": "replace", "path": "/spec/unschedulable", "value": True}],
            JSON_PATCH,
            ("spec", "unschedulable"),
            True,
            id="json-patch",
        ),
    ],
)
def test_patch(patch: Any, patch_type: str, path: tuple[Any, ...], expected: Any) -> None:
    result: Any = apply_patch(POD_SPEC, patch, patch_type)
    for step in path:
        result = result[step]
    assert result == expected
    assert POD_SPEC["spec"]["unschedulable"] is False  # the input is never changed


@pytest.mark.parametrize(
    ("patch", "patch_type", "code"),
    [
        pytest.param(
            [{"op": "test", "path": "/spec/unschedulable", "value": True}],
            JSON_PATCH,
            422,
            id="failed-test-op",
        ),
        pytest.param({"op": "add"}, JSON_PATCH, 400, id="json-patch-not-a-list"),
        pytest.param([1, 2], STRATEGIC_MERGE_PATCH, 400, id="smp-not-an-object"),
        pytest.param(
            {"spec": {"containers": [{"image": "x"}]}},
            STRATEGIC_MERGE_PATCH,
            400,
            id="item-without-merge-key",
        ),
    ],
)
def test_bad_patches_are_client_errors(patch: Any, patch_type: str, code: int) -> None:
    with pytest.raises(ApiError) as error:
        apply_patch(POD_SPEC, patch, patch_type)
    assert error.value.code == code

from __future__ import annotations

from typing import Any

import pytest

from resilience import objectpath
from resilience.errors import InvalidInputError

POD: dict[str, Any] = {
    "metadata": {"annotations": {"linkerd.io/inject": "enabled"}},
    "spec": {
        "containers": [
            {"name": "web", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]}
        ],
        "rules": [{"host": "x", "value": 1}],
        "metrics": [{"resource": {"name": "cpu", "t": 70}}],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param('metadata.annotations["linkerd.io/inject"]', "enabled", id="quoted-key"),
        pytest.param("spec.containers[name=web].env[name=A].value", "1", id="select-by-name"),
        pytest.param("spec.containers[0].ports[0].containerPort", 80, id="index"),
        pytest.param("spec.metrics[resource.name=cpu].resource.t", 70, id="nested-selector"),
        pytest.param("spec.containers[name=db].image", objectpath.MISSING, id="no-such-item"),
        pytest.param("spec.containers[3]", objectpath.MISSING, id="index-out-of-range"),
        pytest.param("spec.rules.host", objectpath.MISSING, id="key-on-a-list"),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    assert objectpath.lookup(POD, path) == expected


@pytest.mark.parametrize("bad", ["spec..x", "spec[", "spec[name]", "a b"])
def test_parse_rejects_bad_paths(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="bad field path"):
        objectpath.parse(bad)


def test_flatten_keys_lists_by_merge_key_and_round_trips() -> None:
    flat = dict(objectpath.flatten(POD))
    assert flat["spec.containers[name=web].env[name=A].value"] == "1"
    assert flat['metadata.annotations["linkerd.io/inject"]'] == "enabled"
    # lists whose items share no unique key fall back to indices
    assert flat["spec.rules[0].host"] == "x"
    for path, value in flat.items():
        assert objectpath.lookup(POD, path) == value

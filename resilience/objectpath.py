"""Addresses of fields inside Kubernetes objects, as people write them in messages.

`spec.template.spec.containers[name=web].env[name=DB_URL].value` picks list
items by a key, the way strategic merge patch does, so that a path names the
same field whatever the order of the list. Keys with dots go in quotes:
`metadata.annotations["linkerd.io/inject"]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from resilience.errors import InvalidInputError

_TOKEN = re.compile(
    r"""\.?(?:
        (?P<key>[A-Za-z0-9_\-/]+)
      | \["(?P<quoted>[^"]+)"\]
      | \[(?P<index>\d+)\]
      | \[(?P<selector>[A-Za-z0-9_.\-]+)=(?P<value>[^\]]*)\]
    )""",
    re.VERBOSE,
)

# Lists of objects are keyed by the first of these their items carry.
LIST_MERGE_KEYS = ("name", "type", "path", "topologyKey", "containerPort", "port")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Step:
    key: str | None = None
    index: int | None = None
    selector: str | None = None
    value: str | None = None


def parse(path: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None or match.end() == position:
            raise InvalidInputError(f"bad field path {path!r} at {path[position:]!r}")
        if match["key"] is not None or match["quoted"] is not None:
            steps.append(Step(key=match["key"] or match["quoted"]))
        elif match["index"] is not None:
            steps.append(Step(index=int(match["index"])))
        else:
            steps.append(Step(selector=match["selector"], value=match["value"]))
        position = match.end()
    return tuple(steps)


def lookup(obj: Any, path: str) -> Any:
    """The value at `path`, or `MISSING` when any step is absent."""
    current = obj
    for step in parse(path):
        current = _step_into(current, step)
        if current is MISSING:
            break
    return current


def flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of `obj` with its path; lists of objects are keyed by merge key.

    >>> dict(flatten({"a": [{"name": "x", "v": 1}], "b": {}}))
    {'a[name=x].name': 'x', 'a[name=x].v': 1, 'b': {}}
    """
    if isinstance(obj, Mapping) and obj:
        for key, value in obj.items():
            yield from flatten(value, _join(prefix, str(key)))
    elif isinstance(obj, list) and obj:
        merge_key = _merge_key(obj)
        for index, item in enumerate(obj):
            label = f"[{merge_key}={item[merge_key]}]" if merge_key else f"[{index}]"
            yield from flatten(item, prefix + label)
    else:
        yield prefix, obj


def _join(prefix: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_\-]+", key):
        return f"{prefix}.{key}" if prefix else key
    return f'{prefix}["{key}"]'


def _merge_key(items: list[Any]) -> str | None:
    if not all(isinstance(item, Mapping) for item in items):
        return None
    for key in LIST_MERGE_KEYS:
        values = [item.get(key) for item in items]
        if all(isinstance(v, str | int) for v in values) and len(set(values)) == len(values):
            return key
    return None


def _step_into(current: Any, step: Step) -> Any:
    if step.key is not None:
        return current.get(step.key, MISSING) if isinstance(current, Mapping) else MISSING
    if not isinstance(current, list):
        return MISSING
    if step.index is not None:
        return current[step.index] if step.index < len(current) else MISSING
    assert step.selector is not None
    for item in current:
        found = lookup(item, step.selector)
        if found is not MISSING and str(found) == step.value:
            return item
    return MISSING

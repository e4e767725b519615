"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch.

Strategic merge covers the fields clients really patch: lists of objects merge
by their `patchMergeKey` (containers and env by name, conditions by type,
container ports by containerPort, service ports by port, ...), `$patch:
delete|replace` directives, `$deleteFromPrimitiveList/...`; `$setElementOrder`
and `$retainKeys` are accepted and dropped.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from sandbox.kube.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

# field name -> merge keys, tried in order against the items (first one present wins)
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "ports": ("containerPort", "port"),
    "topologySpreadConstraints": ("topologyKey",),
    "hostAliases": ("ip",),
    "addresses": ("type",),
    "resourceClaims": ("name",),
}
# lists of primitives merged as sets
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def apply_patch(target: dict[str, Any], patch: Any, patch_type: str) -> dict[str, Any]:
    if patch_type == JSON_PATCH:
        return apply_json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("the patch body must be a JSON object")
    if patch_type == MERGE_PATCH:
        result = merge_patch(target, patch)
    else:
        result = strategic_merge(target, patch)
    if not isinstance(result, dict):
        raise bad_request("the patch must leave an object")
    return result


def apply_json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(target))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {error}",
        ) from None
    except (TypeError, KeyError, ValueError) as error:
        raise bad_request(f"invalid JSON patch: {error}") from None
    if not isinstance(result, dict):
        raise bad_request("the patch must leave an object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if field in MERGED_PRIMITIVE_LISTS:
        merged = list(current or [])
        merged += [v for v in patch if v not in merged]
        return merged
    key = _merge_key(field, current, patch)
    if key is None or not isinstance(current, list):
        return [
            item
            for item in (strategic_merge(None, v) if isinstance(v, dict) else v for v in patch)
            if item is not None
        ]
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"{field}: every item of a strategic merge list needs {key!r}")
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(strategic_merge(None, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _merge_key(field: str, current: Any, patch: list[Any]) -> str | None:
    """The declared merge key of `field`; where two are declared, the one the items use."""
    candidates = MERGE_KEYS.get(field)
    if not candidates or not all(isinstance(i, dict) for i in patch):
        return None
    existing = [i for i in current if isinstance(i, dict)] if isinstance(current, list) else []
    for items in (existing, patch):
        for key in candidates:
            if items and all(key in item for item in items):
                return key
    return candidates[0]

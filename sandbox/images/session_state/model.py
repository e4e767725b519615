"""Sessions and their events as plain data, and the pure decisions about them.

>>> merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}, "e": [1]})
{'a': 1, 'b': {'d': 3}, 'e': [1]}
>>> precondition_holds(parse_if_match('"3", "4"'), current_version=4)
True
>>> format_etag(7)
'"7"'
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from sandbox.images.session_state.errors import BadRequest, Unprocessable

JsonObject = dict[str, Any]
EventKind = Literal["created", "updated", "deleted"]
MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 500
MAX_OWNER_LENGTH = 256


@dataclass(frozen=True)
class Session:
    id: str
    owner: str
    version: int
    state: JsonObject
    seq: int

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "owner": self.owner,
            "version": self.version,
            "state": self.state,
            "seq": self.seq,
        }


@dataclass(frozen=True)
class Event:
    session: str
    seq: int
    version: int
    kind: EventKind
    state: JsonObject | None
    at: str

    def to_message(self) -> JsonObject:
        """The WebSocket frame (and the pub/sub payload) for this event."""
        return {
            "type": "event",
            "session": self.session,
            "seq": self.seq,
            "version": self.version,
            "kind": self.kind,
            "state": self.state,
            "at": self.at,
        }


def event_from_message(message: Any) -> Event:
    """The inverse of `Event.to_message`; `ValueError` when the payload is not an event."""
    if not isinstance(message, dict) or message.get("type") != "event":
        raise ValueError("not an event message")
    kind = message.get("kind")
    seq, version, state = message.get("seq"), message.get("version"), message.get("state")
    if kind not in ("created", "updated", "deleted"):
        raise ValueError(f"unknown event kind {kind!r}")
    if not _is_int(seq) or not _is_int(version):
        raise ValueError("seq and version must be integers")
    if state is not None and not isinstance(state, dict):
        raise ValueError("state must be an object or null")
    return Event(
        session=parse_session_id(str(message.get("session", ""))),
        seq=seq,
        version=version,
        kind=kind,
        state=state,
        at=str(message.get("at", "")),
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# ---- requests ----


@dataclass(frozen=True)
class CreateRequest:
    owner: str
    state: JsonObject
    id: str | None = None


@dataclass(frozen=True)
class ReplaceRequest:
    state: JsonObject
    owner: str | None = None


def parse_session_id(text: str) -> str:
    """The canonical form of a UUID; `BadRequest` otherwise."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        raise BadRequest("invalid_id", f"{text[:64]!r} is not a session id (a UUID)") from None


def parse_create(body: Any) -> CreateRequest:
    """`{"owner": str, "state": object, "id"?: uuid}`."""
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    owner = _owner(body.get("owner"), required=True)
    assert owner is not None
    state = _state(body)
    explicit = body.get("id")
    if explicit is None:
        return CreateRequest(owner=owner, state=state)
    if not isinstance(explicit, str):
        raise Unprocessable("id must be a string (a UUID)")
    try:
        return CreateRequest(owner=owner, state=state, id=str(uuid.UUID(explicit)))
    except ValueError:
        raise Unprocessable("id must be a UUID") from None


def parse_replace(body: Any) -> ReplaceRequest:
    """`{"state": object, "owner"?: str}`; the owner, when given, must not change."""
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    return ReplaceRequest(state=_state(body), owner=_owner(body.get("owner"), required=False))


def parse_patch(body: Any) -> JsonObject:
    """A JSON merge patch of the state: it must be an object, or the state would stop being one."""
    if not isinstance(body, dict):
        raise Unprocessable("a merge patch of the state must be a JSON object")
    return body


def _owner(value: Any, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise Unprocessable("owner is required and must be a non-empty string")
    if len(value) > MAX_OWNER_LENGTH:
        raise Unprocessable(f"owner must be at most {MAX_OWNER_LENGTH} characters")
    return value


def _state(body: JsonObject) -> JsonObject:
    state = body.get("state")
    if not isinstance(state, dict):
        raise Unprocessable("state is required and must be a JSON object")
    return state


@dataclass(frozen=True)
class ListQuery:
    owner: str
    limit: int
    after: str | None


def parse_list_query(query: dict[str, str]) -> ListQuery:
    """`?owner=X&limit=N&after=<id>`: owner required, 1 <= limit <= 500 (default 50)."""
    owner = query.get("owner", "")
    if not owner:
        raise BadRequest("bad_request", "the owner query parameter is required")
    text = query.get("limit", "")
    try:
        limit = int(text) if text else DEFAULT_LIST_LIMIT
    except ValueError:
        raise BadRequest("bad_request", f"limit must be an integer, got {text[:32]!r}") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest("bad_request", f"limit must be between 1 and {MAX_LIST_LIMIT}")
    after = query.get("after") or None
    return ListQuery(
        owner=owner, limit=limit, after=None if after is None else parse_session_id(after)
    )


# ---- merge patch (RFC 7396) ----


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, `null` removes, anything else replaces.

    Returns a new value; neither argument is changed.
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- ETag / If-Match ----

_ETAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')


@dataclass(frozen=True)
class IfMatch:
    """A parsed If-Match header: `*`, or the strong entity tags it lists."""

    any: bool = False
    tags: frozenset[str] = frozenset()


def format_etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> IfMatch | None:
    """None when absent; `BadRequest` when malformed. Weak tags never match (RFC 9110)."""
    if header is None:
        return None
    if header.strip() == "*":
        return IfMatch(any=True)
    tags: set[str] = set()
    for item in header.split(","):
        found = _ETAG.fullmatch(item)
        if found is None:
            raise BadRequest("bad_request", 'If-Match must be "*" or a list of quoted ETags')
        if not found.group(1):
            tags.add(found.group(2))
    return IfMatch(tags=frozenset(tags))


def precondition_holds(if_match: IfMatch | None, current_version: int | None) -> bool:
    """Whether a write may proceed; `current_version` is None when the session is absent.

    An absent session fails any If-Match (the caller answers 404 before asking, though).
    """
    if if_match is None:
        return True
    if current_version is None:
        return False
    return if_match.any or str(current_version) in if_match.tags


# ---- seq ordering for subscribers ----


@dataclass(frozen=True)
class Send:
    seq: int


@dataclass(frozen=True)
class Fetch:
    after: int


@dataclass(frozen=True)
class Idle:
    pass


Step = Send | Fetch | Idle


def next_step(last_sent: int, buffered: frozenset[int] | set[int], head: int | None) -> Step:
    """What a subscription does next to send every event after `last_sent`, in order, once.

    `buffered` are seqs received live; `head` is the highest seq known to exist (None:
    unknown, so ask the database). The next event is sent from the buffer when there;
    if a later one is known (a live message skipped ahead), the gap is read from the
    database first; otherwise there is nothing to do.

        >>> next_step(4, {5, 6}, 6), next_step(4, {6}, 6), next_step(6, set(), 6)
        (Send(seq=5), Fetch(after=4), Idle())
    """
    following = last_sent + 1
    if following in buffered:
        return Send(following)
    if head is None or head >= following or any(seq > following for seq in buffered):
        return Fetch(last_sent)
    return Idle()


def should_deliver(last_sent: int, seq: int) -> bool:
    """Drop duplicates and anything already sent."""
    return seq == last_sent + 1

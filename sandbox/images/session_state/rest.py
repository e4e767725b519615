"""REST under `/api/v1/sessions`: JSON in, JSON out, ETag = the session's version.

POST   /api/v1/sessions                 {"owner", "state", "id"?}  -> 201
GET    /api/v1/sessions?owner=X&limit=N&after=<id>                   -> 200 {"items", "next"}
GET    /api/v1/sessions/{id}                                         -> 200
PUT    /api/v1/sessions/{id}            {"state", "owner"?}        -> 200  (If-Match)
PATCH  /api/v1/sessions/{id}            merge patch of the state    -> 200  (If-Match)
DELETE /api/v1/sessions/{id}                                         -> 204  (If-Match)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.images.session_state.errors import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from sandbox.images.session_state.model import (
    MAX_BODY_BYTES,
    Session,
    format_etag,
    parse_create,
    parse_if_match,
    parse_list_query,
    parse_patch,
    parse_replace,
    parse_session_id,
)
from sandbox.images.session_state.state import RUNTIME

BASE = "/api/v1/sessions"
JSON_TYPES = frozenset({"application/json"})
PATCH_TYPES = frozenset({"application/json", "application/merge-patch+json"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(raw: bytes) -> Any:
    """Strict JSON (no NaN / Infinity); `BadRequest` for anything else."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("invalid_json", "the body is not valid JSON") from None


async def read_json(request: web.Request, allowed: frozenset[str] = JSON_TYPES) -> Any:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    if request.content_type not in allowed:
        raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(sorted(allowed))}")
    raw = await request.read()  # client_max_size bounds a chunked body too
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    return decode_json(raw)


def session_response(session: Session, status: int = 200) -> web.Response:
    response = web.json_response(session.to_json(), status=status)
    response.headers["ETag"] = format_etag(session.version)
    return response


def _session_id(request: web.Request) -> str:
    return parse_session_id(request.match_info["id"])


async def create_session(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = parse_create(await read_json(request))
    written = await runtime.service.create(body)
    assert written.session is not None
    response = session_response(written.session, status=201)
    response.headers["Location"] = f"{BASE}/{written.session.id}"
    return response


async def get_session(request: web.Request) -> web.Response:
    session = await request.app[RUNTIME].service.get(_session_id(request))
    return session_response(session)


async def list_sessions(request: web.Request) -> web.Response:
    query = parse_list_query(dict(request.query))
    sessions = await request.app[RUNTIME].service.list_by_owner(query)
    following = sessions[-1].id if len(sessions) == query.limit else None
    return web.json_response({"items": [s.to_json() for s in sessions], "next": following})


async def replace_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    if_match = parse_if_match(request.headers.get("If-Match"))
    body = parse_replace(await read_json(request))
    written = await request.app[RUNTIME].service.replace(session_id, body, if_match)
    assert written.session is not None
    return session_response(written.session)


async def patch_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    if_match = parse_if_match(request.headers.get("If-Match"))
    patch = parse_patch(await read_json(request, PATCH_TYPES))
    written = await request.app[RUNTIME].service.patch(session_id, patch, if_match)
    assert written.session is not None
    return session_response(written.session)


async def delete_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    if_match = parse_if_match(request.headers.get("If-Match"))
    await request.app[RUNTIME].service.delete(session_id, if_match)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(BASE, create_session)
    app.router.add_get(BASE, list_sessions, allow_head=False)
    app.router.add_get(BASE + "/{id}", get_session, allow_head=False)
    app.router.add_put(BASE + "/{id}", replace_session)
    app.router.add_patch(BASE + "/{id}", patch_session)
    app.router.add_delete(BASE + "/{id}", delete_session)

"""A stand-in for the API server's authorization API in unit tests: it answers
SelfSubjectAccessReview from a set of denied attributes (or with a status code, or
slowly) and records every review it was asked, plus `/version` for the reachability
check that comes first. Loopback only; `close()` joins its thread."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REVIEWS_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class FakeAuthorization:
    """`denied`: (verb, resource[/subresource], namespace) triples answered allowed=false."""

    def __init__(self) -> None:
        self.denied: set[tuple[str, str, str]] = set()
        self.status = 201  # 404: not served; 403: may not ask; 500: broken
        self.delay = 0.0
        self.reviews: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/version"):
                    owner.reply(self, 200, VERSION)
                else:
                    owner.reply(self, 404, {"kind": "Status", "code": 404})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.startswith(REVIEWS_PATH):
                    owner.reply(self, 404, {"kind": "Status", "code": 404})
                    return
                time.sleep(owner.delay)
                if owner.status != 201:
                    status = {"kind": "Status", "code": owner.status, "reason": "Fake"}
                    owner.reply(self, owner.status, status)
                    return
                attributes = body["spec"]["resourceAttributes"]
                owner.reviews.append(attributes)
                body["status"] = {"allowed": owner.key(attributes) not in owner.denied}
                owner.reply(self, 201, body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def key(attributes: dict[str, Any]) -> tuple[str, str, str]:
        resource = attributes.get("resource", "")
        if attributes.get("subresource"):
            resource = f"{resource}/{attributes['subresource']}"
        return (attributes.get("verb", ""), resource, attributes.get("namespace", ""))

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def write_kubeconfig(path: Path, server: str, context: str = "dev") -> Path:
    """A kubeconfig whose one context points at `server`, namespace harmonyflow."""
    cluster = {"name": context, "cluster": {"server": server}}
    entry = {"cluster": context, "user": "u", "namespace": "harmonyflow"}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [cluster],
                "contexts": [{"name": context, "context": entry}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
            }
        )
    )
    return path

"""A stand-in for Prometheus's HTTP API in unit tests: one alert rule, firing or not as
the test says (`/api/v1/alerts`, `/api/v1/rules`)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ALERT = "SessionStateHighErrorRate"


class FakePrometheus:
    def __init__(self, alert: str = ALERT) -> None:
        self.alert = alert
        self.firing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/api/v1/alerts"):
                    data: dict[str, Any] = {"alerts": owner.alerts()}
                elif self.path.startswith("/api/v1/rules"):
                    rule = {"name": owner.alert, "type": "alerting", "state": owner.state()}
                    data = {"groups": [{"name": "g", "rules": [rule]}]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps({"status": "success", "data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def state(self) -> str:
        return "firing" if self.firing else "inactive"

    def alerts(self) -> list[dict[str, Any]]:
        if not self.firing:
            return []
        return [
            {
                "labels": {"alertname": self.alert, "severity": "page"},
                "state": "firing",
                "activeAt": "2026-01-01T00:00:00Z",
                "value": "0.4",
            }
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

"""WebSocket load on `/ws`: connect, ping round trips, REST-to-push fan-out, reconnects,
and sequence gaps / duplicates counted as failures.

    locust -f loadtests/sessions_ws.py --headless -H http://127.0.0.1:8181 -u 5 -r 5 -t 30s

Entries: harmonyflow/ws.py. Both users together:
`locust -f loadtests/sessions_rest.py,loadtests/sessions_ws.py ...`.
"""

from harmonyflow.users import SessionWsUser
from locust import task


class WsSessions(SessionWsUser):
    @task(2)
    def ping(self) -> None:
        self.round_trip()

    @task(1)
    def push(self) -> None:
        self.fan_out()

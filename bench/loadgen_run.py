"""One measured Locust run for bench/loadgen.py, in a process of its own (library mode).

    python -m bench.loadgen_run <workload> <host> <users> <spawn-rate> <warm-s> <measure-s>

Starts `users` of the workload's user class, waits until they are spawned and `warm`
seconds more, resets the stats, then measures `measure` seconds: the CPU this process
used (getrusage: every greenlet, ours and Locust's) and what the users did. Prints one
JSON line. The environment (HF_*) must be set by the caller: the HarmonyFlow users read
it at import.

Workloads: `rest` (our RestSessions) and `rest-bare` (a FastHttpUser doing the same
mix of calls without checks); `ws` (our WebSocket user, ping round trips) and `ws-bare`
(websocket-client in a plain loop firing the same Locust event); `push` and `push-bare`
(the server pushes, the users only receive; ours checks every seq); `hold` (our
WebSocket user at HF_WAIT_MIN/MAX pacing, for the socket capacity).
"""

from __future__ import annotations

import importlib
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import locust  # before websocket-client: gevent's monkey patching comes first
import websocket
from locust import FastHttpUser, User, constant, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "loadtests"))

HTTP_TYPES = ("GET", "POST", "PUT", "DELETE")
Count = dict[str, Any]


class BareRest(FastHttpUser):
    """The same calls as RestSessions (6 reads, 3 replaces, 1 create, 1 delete), unchecked."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.sessions: list[str] = []
        self.n = 0
        self.create()

    def _next_state(self) -> dict[str, Any]:
        self.n += 1
        return {"n": self.n, "owner": "bare", "at": round(time.time(), 3)}

    @task(1)
    def create(self) -> None:
        body = {"owner": "bare", "state": self._next_state()}
        response = self.client.post("/api/v1/sessions", json=body, name="/api/v1/sessions")
        if response.status_code == 201:
            self.sessions.append(response.json()["id"])

    @task(6)
    def read(self) -> None:
        if self.sessions:
            self.client.get(f"/api/v1/sessions/{random.choice(self.sessions)}", name="[id]")

    @task(3)
    def replace(self) -> None:
        if self.sessions:
            url = f"/api/v1/sessions/{random.choice(self.sessions)}"
            self.client.put(url, json={"state": self._next_state()}, name="[id]")

    @task(1)
    def delete(self) -> None:
        if len(self.sessions) > 1:
            session = self.sessions.pop(random.randrange(len(self.sessions)))
            self.client.delete(f"/api/v1/sessions/{session}", name="[id]")


class BareWs(User):
    """A websocket-client loop: ping, read until the pong, fire the event."""

    wait_time = constant(0)
    abstract = True  # concrete subclasses below

    def on_start(self) -> None:
        url = "ws://" + (self.host or "").removeprefix("http://") + "/ws"
        self.ws = websocket.create_connection(url, timeout=10)

    def on_stop(self) -> None:
        self.ws.close(timeout=1)


class BareWsPing(BareWs):
    abstract = False

    @task
    def ping(self) -> None:
        began = time.perf_counter()
        self.ws.send('{"type":"ping"}')
        while json.loads(self.ws.recv()).get("type") != "pong":
            pass
        self.environment.events.request.fire(
            request_type="WS", name="ping", response_time=(time.perf_counter() - began) * 1000,
            response_length=0, exception=None, context={},
        )  # fmt: skip


class BareWsPush(BareWs):
    """Subscribes to a session of its own, then only reads (and parses) what comes."""

    abstract = False

    def on_start(self) -> None:
        response = self._post()
        super().on_start()
        self.ws.send(json.dumps({"type": "subscribe", "session": response["id"], "since": 0}))

    def _post(self) -> Any:
        http = FastHttpSession(self.host, self.environment.events.request, user=None)
        return http.post("/api/v1/sessions", json={"owner": "bare", "state": {}}).json()

    @task
    def receive(self) -> None:
        while True:
            json.loads(self.ws.recv())


def our_classes(workload: str) -> type[User]:
    session_ws_user: Any = importlib.import_module("harmonyflow.users").SessionWsUser
    rest_sessions: Any = importlib.import_module("sessions_rest").RestSessions

    class OurRest(rest_sessions):
        wait_time = constant(0)

    class OurWsPing(session_ws_user):
        wait_time = constant(0)

        @task
        def ping(self) -> None:
            self.round_trip()

    class OurWsPush(session_ws_user):
        wait_time = constant(1)

        @task
        def stay(self) -> None:
            self._ready()  # the reader takes the pushes in

    class OurWsHold(session_ws_user):
        @task
        def ping(self) -> None:
            self.round_trip()

    chosen: dict[str, type[User]] = {
        "rest": OurRest, "ws": OurWsPing, "push": OurWsPush, "hold": OurWsHold,
    }  # fmt: skip
    return chosen[workload]


def user_class(workload: str) -> type[User]:
    bare: dict[str, type[User]] = {
        "rest-bare": BareRest, "ws-bare": BareWsPing, "push-bare": BareWsPush,
    }  # fmt: skip
    return bare[workload] if workload in bare else our_classes(workload)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(environment: Environment) -> Count:
    stats = environment.stats
    entries = {f"{e.method} {e.name}": e for e in stats.entries.values()}
    http = sum(e.num_requests for e in stats.entries.values() if e.method in HTTP_TYPES)
    ping = entries.get("WS ping")
    failures = {k: e.num_failures for k, e in entries.items() if e.num_failures}
    return {
        "http_requests": http,
        "pings": ping.num_requests if ping else 0,
        "ping_p99_ms": ping.get_response_time_percentile(0.99) if ping else None,
        "ping_p50_ms": ping.get_response_time_percentile(0.5) if ping else None,
        "failures": failures,
    }


def connected(runner: Any) -> int:
    """Users holding an open socket now (ours: subscribed and not lost; bare: open)."""
    held = 0
    for greenlet in list(runner.user_greenlets):
        user = greenlet.args[0] if greenlet.args else None
        socket = getattr(user, "socket", None)
        held += bool(socket is not None and socket.connected)
    return held


def main() -> None:
    workload, host = sys.argv[1], sys.argv[2]
    users, rate, warm, measure = int(sys.argv[3]), float(sys.argv[4]), *map(float, sys.argv[5:7])
    environment = Environment(user_classes=[user_class(workload)], events=events, host=host)
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=rate)
    began = time.monotonic()
    while runner.user_count < users and time.monotonic() - began < 600:
        gevent.sleep(0.5)
    spawned_after = time.monotonic() - began
    gevent.sleep(warm)
    environment.stats.reset_all()
    cpu_before, wall_before = cpu_seconds(), time.monotonic()
    gevent.sleep(measure)
    cpu, wall = cpu_seconds() - cpu_before, time.monotonic() - wall_before
    result = {**summary(environment), "cpu_s": cpu, "wall_s": wall, "users": runner.user_count,
              "spawned_after_s": spawned_after, "connected": connected(runner)}  # fmt: skip
    runner.quit()
    print(json.dumps(result), flush=True)
    _ = locust.__version__  # imported for its patching


if __name__ == "__main__":
    main()

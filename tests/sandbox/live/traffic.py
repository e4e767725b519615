"""REST and WebSocket clients that keep score, for tests that break things under traffic.

The writer keeps a ledger of every acknowledged write; the followers record every
sequence number pushed to them. The verdicts are pure functions over those records,
so "no acknowledged write lost" and "no gap, no duplicate" are checked, not assumed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import websocket

from resilience.slo.writes import Ack, lost_writes, write_gap

__all__ = ["Ack", "Follower", "Writer", "lost_writes", "request", "sequence_faults", "write_gap"]


def sequence_faults(seqs: list[int], last: int) -> list[str]:
    """Pushed sequence numbers must run 1..last (after the first seen) with no gap or repeat.

    >>> sequence_faults([1, 2, 2, 4], 4)
    ['duplicate seq 2', 'gap before seq 4 (after 2)']
    """
    findings = []
    for before, after in itertools.pairwise(seqs):
        if after == before:
            findings.append(f"duplicate seq {after}")
        elif after < before:
            findings.append(f"seq went back from {before} to {after}")
        elif after != before + 1:
            findings.append(f"gap before seq {after} (after {before})")
    if seqs and seqs[-1] != last:
        findings.append(f"stream ended at seq {seqs[-1]}, the log has {last}")
    return findings


def request(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    call = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw) if raw else None
        except ValueError:
            return error.code, raw.decode(errors="replace")


@dataclass
class Writer:
    """Updates sessions round-robin until stopped (bounded by count and time)."""

    base: str
    sessions: list[str]
    max_writes: int = 5000
    max_seconds: float = 120.0
    acked: list[Ack] = field(default_factory=list)
    failures: int = 0
    failure_statuses: Counter[int] = field(default_factory=Counter)  # 0: no answer
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        counter = 0
        while not self.stop.is_set() and counter < self.max_writes and time.monotonic() < deadline:
            session = self.sessions[counter % len(self.sessions)]
            counter += 1
            state = {"n": counter}
            try:
                status, body = request(
                    self.base, "PUT", f"/api/v1/sessions/{session}", {"state": state}
                )
            except OSError:
                status, body = 0, None
            if status == 200 and isinstance(body, dict):
                self.acked.append(Ack(session, int(body["version"]), state, time.monotonic()))
            else:
                self.failures += 1
                self.failure_statuses[status] += 1
                time.sleep(0.05)


@dataclass
class Follower:
    """One WebSocket subscriber that reconnects with `since` and records every seq."""

    url: str
    session: str
    seqs: list[int] = field(default_factory=list)
    close_codes: list[int] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    connected: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + 180
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self._session()
            except (OSError, websocket.WebSocketException):
                time.sleep(0.2)

    def _session(self) -> None:
        socket = websocket.create_connection(self.url, timeout=2)
        try:
            since = self.seqs[-1] if self.seqs else 0
            socket.send(json.dumps({"type": "subscribe", "session": self.session, "since": since}))
            self.connected.set()
            while not self.stop.is_set():
                try:
                    opcode, data = socket.recv_data(control_frame=False)
                except websocket.WebSocketTimeoutException:
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    self.close_codes.append(code)
                    return
                self._receive(json.loads(data))
        finally:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                socket.close()

    def _receive(self, message: dict[str, Any]) -> None:
        if message.get("type") == "subscribed" and message.get("server"):
            self.servers.append(str(message["server"]))
        if message.get("type") == "event" and message.get("session") == self.session:
            self.seqs.append(int(message["seq"]))

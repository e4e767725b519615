"""REST load on the session-state API: create, read, replace, delete, checked by a ledger.

    locust -f loadtests/sessions_rest.py --headless -H http://127.0.0.1:8181 -u 10 -r 5 -t 30s

Entries: `POST /api/v1/sessions`, `GET|PUT|DELETE /api/v1/sessions/[id]`, and the
ledger's `LEDGER read verified` / `LEDGER stale read` / `LEDGER lost write` /
`LEDGER lost session` / `LEDGER deleted session readable`. Tuning: harmonyflow/users.py.
"""

from harmonyflow.users import REST_READ_WEIGHT, SessionRestUser
from locust import task


class RestSessions(SessionRestUser):
    @task(REST_READ_WEIGHT)  # HF_REST_READ_WEIGHT, 6 by default: the write share
    def read(self) -> None:
        self.read_a_session()

    @task(3)
    def replace(self) -> None:
        self.replace_a_session()

    @task(1)
    def create(self) -> None:
        self.create_a_session()

    @task(1)
    def delete(self) -> None:
        self.delete_a_session()

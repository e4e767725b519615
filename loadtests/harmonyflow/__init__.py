"""Reusable parts of the HarmonyFlow locustfiles (`loadtests/*.py`).

Three layers, as in Locust's own `custom_xmlrpc_client` example:

- clients that time with `perf_counter` and fire `events.request`
  (`rest.SessionApi` on FastHttpSession, `ws.SessionSocket` on websocket-client);
- abstract users that build the clients and keep their state (`users`);
- concrete users in the locustfiles, holding only `@task`s.

The pure parts (`ledger`, `sequence`, `buckets`, `recorder`, `stages`) import
nothing from Locust, so the project's tests check them without gevent's monkey
patching. Nothing here imports `sandbox` or `resilience`: the locustfiles run
unchanged on any machine with Locust and websocket-client, a Kubernetes worker
pod included (`deploy/locust/`). The locustfiles put this directory on `sys.path`
(`locust -f loadtests/x.py` does that), so this package is `harmonyflow`.
"""

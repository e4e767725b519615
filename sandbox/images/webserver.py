"""The nginx stand-in: the welcome page on the pod IP, port 80, as `nginx:*` answers.

Binds `POD_IP` only (a loopback address from the kubelet's pool), never 0.0.0.0.
`/` and `/index.html` answer nginx's default page (615 bytes, as 1.27 ships it);
anything else answers nginx's 404 page. Access lines go to stdout in nginx's
`combined` format, so `kubectl logs` shows requests as it would on EKS. SIGTERM
stops it with exit 0 (nginx's fast shutdown).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

SERVER = "nginx/1.27.5"
PORT = 80
WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""
NOT_FOUND = f"""<html>
<head><title>404 Not Found</title></head>
<body>
<center><h1>404 Not Found</h1></center>
<hr><center>{SERVER}</center>
</body>
</html>
"""


def page_for(method: str, path: str) -> tuple[int, str]:
    """The status and body nginx's default site answers.

    >>> page_for("GET", "/")[0], page_for("GET", "/x")[0], page_for("POST", "/")[0]
    (200, 404, 405)
    """
    if method not in ("GET", "HEAD"):
        return 405, NOT_FOUND.replace("404 Not Found", "405 Not Allowed")
    if path.split("?", 1)[0] in ("/", "/index.html"):
        return 200, WELCOME
    return 404, NOT_FOUND


def access_line(client: str, request_line: str, code: int, size: int, agent: str) -> str:
    moment = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{client} - - [{moment}] "{request_line}" {code} {size} "-" "{agent or "-"}" "-"\n'


class _Handler(BaseHTTPRequestHandler):
    server_version = SERVER
    sys_version = ""

    def _answer(self) -> None:
        code, body = page_for(self.command, self.path)
        data = body.encode()
        self.send_response_only(code)
        self.send_header("Server", SERVER)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        agent = self.headers.get("User-Agent", "")
        client = self.client_address[0]
        sys.stdout.write(access_line(client, self.requestline, code, len(data), agent))
        sys.stdout.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Access lines are written by `_answer`; nothing else."""


def serve_forever() -> int:
    address = os.environ.get("POD_IP", "")
    if not address.startswith("127."):
        sys.stderr.write(f"nginx: [emerg] no loopback pod IP to bind (POD_IP={address!r})\n")
        return 1
    try:
        server = ThreadingHTTPServer((address, PORT), _Handler)
    except OSError as error:
        sys.stderr.write(
            f"nginx: [emerg] bind() to {address}:{PORT} failed ({error.errno}: {error.strerror})\n"
        )
        return 1
    server.daemon_threads = True

    def stop(_signo: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGQUIT, stop)
    sys.stderr.write(
        "/docker-entrypoint.sh: Configuration complete; ready for start up\n"
        f"{datetime.now(UTC):%Y/%m/%d %H:%M:%S} [notice] 1#1: {SERVER}\n"
    )
    sys.stderr.flush()
    with server:
        server.serve_forever(poll_interval=0.2)
    return 0

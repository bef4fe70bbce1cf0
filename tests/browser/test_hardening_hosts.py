"""DNS rebinding: a real `streamlit run app.py` refuses the WebSocket handshake for a Host that is not loopback.

A page on evil.example whose name is re-pointed at 127.0.0.1 reaches the server from the
user's own browser with `Host: evil.example:PORT`; `server.allowedHosts` (in
.streamlit/config.toml, which `streamlit run` reads from the repository root, and on
workbench.sh's command line) makes Streamlit close that handshake with 403 instead of 101.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.browser import ROOT, serve_app

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}  # Streamlit compares the Host without brackets and port


def handshake_status(port: int, host: str, origin: str | None) -> int:
    """Open /_stcore/stream as a browser would (Upgrade: websocket) and return the HTTP status of the answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        + (f"Origin: {origin}\r\n" if origin else "") +
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    match = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
    assert match, f"no HTTP status line in {answer[:200]!r}"
    return int(match.group(1))


@pytest.fixture(scope="module")
def app_port(tmp_path_factory: pytest.TempPathFactory):
    """The real dashboard on a free loopback port (its config comes from .streamlit/config.toml)."""
    home = tmp_path_factory.mktemp("hosts_home")
    with serve_app(home) as url:
        yield urlparse(url).port


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_hosts_are_accepted(app_port: int, host: str):
    assert handshake_status(app_port, f"{host}:{app_port}", f"http://{host}:{app_port}") == 101


@pytest.mark.parametrize("host, origin", [
    ("evil.example", "http://evil.example"),  # DNS rebinding: same-origin for the browser, foreign name
    ("evil.example", None),  # no Origin at all (a rebound page's script, or a non-browser client)
    ("127.0.0.1.evil.example", "http://127.0.0.1.evil.example"),  # a prefix is not the name
])
def test_foreign_host_is_refused(app_port: int, host: str, origin: str | None):
    origin = origin and f"{origin}:{app_port}"
    assert handshake_status(app_port, f"{host}:{app_port}", origin) == 403


def test_shipped_config_and_start_command_list_the_loopback_names():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert set(config["server"]["allowedHosts"]) == LOOPBACK_HOSTS
    start = (ROOT / "workbench.sh").read_text(encoding="utf-8")
    run_line = start[start.index("-m ui.serve app.py"):].split("\n    ;;")[0]
    assert set(re.findall(r"--server\.allowedHosts (\S+)", run_line)) == LOOPBACK_HOSTS

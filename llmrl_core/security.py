"""Who may run user-supplied code: only a server on loopback, or one explicitly allowed.

Custom Python rewards execute code typed into the page. On a server reachable from other
machines that would hand a shell to anyone who can open the page, so it is off unless the
server listens on loopback or LLMRL_ALLOW_CUSTOM_CODE=1 is set.
"""

from __future__ import annotations

import ipaddress
import os

ALLOW_ENV = "LLMRL_ALLOW_CUSTOM_CODE"


def is_loopback_address(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; False for 0.0.0.0, '' (all interfaces) and others."""
    if not address:
        return False
    host = address.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def custom_code_allowed(server_address: str | None) -> tuple[bool, str]:
    """Whether user code may run, and a sentence saying why (shown on the page)."""
    if os.environ.get(ALLOW_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return True, f"Custom code is allowed because {ALLOW_ENV}=1 is set."
    if is_loopback_address(server_address):
        return True, f"Custom code is allowed because the server listens on loopback ({server_address})."
    shown = server_address or "all interfaces"
    return False, (
        f"Custom Python is off: this server listens on {shown}, so anyone who can reach it could run code here. "
        f"Serve on 127.0.0.1, or set {ALLOW_ENV}=1 if you accept that risk."
    )

"""Who may run user-supplied code (only a server on loopback, or one explicitly allowed) and what it sees.

Custom Python rewards execute code typed into the page. On a server reachable from other
machines that would hand a shell to anyone who can open the page, so it is off unless the
server listens on loopback or LLMRL_ALLOW_CUSTOM_CODE=1 is set. When it runs, it gets the
server's environment without its secrets (scrub_environment).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Mapping

ALLOW_ENV = "LLMRL_ALLOW_CUSTOM_CODE"
SECRET_NAME_PARTS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")  # HF_TOKEN, WANDB_API_KEY, ...
SECRET_NAME_PREFIXES = ("AWS_",)  # AWS_ACCESS_KEY_ID is caught above; AWS_SESSION_* and friends are not


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


def is_secret_env_name(name: str) -> bool:
    """True for environment variable names that usually hold credentials (HF_TOKEN, OPENAI_API_KEY, AWS_*, ...)."""
    upper = name.upper()
    return upper.startswith(SECRET_NAME_PREFIXES) or any(part in upper for part in SECRET_NAME_PARTS)


def scrub_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` without the variables is_secret_env_name flags; PATH, HOME, LANG, PYTHONPATH... stay."""
    return {name: value for name, value in env.items() if not is_secret_env_name(name)}

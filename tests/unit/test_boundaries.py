"""Project boundaries: the engine never imports Streamlit; rendered text is escaped; loopback rules."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import llmrl_core
from llmrl_core.core.security import custom_code_allowed, is_loopback_address
from llmrl_core.present.common import render_token_html

ROOT = Path(__file__).resolve().parents[2]


def test_engine_import_does_not_pull_streamlit():
    modules = [m.name for m in pkgutil.walk_packages(llmrl_core.__path__, "llmrl_core.") if not m.name.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_no_streamlit_import_in_engine_source():
    for path in (ROOT / "llmrl_core").rglob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path


def test_token_view_escapes_markup():
    page = render_token_html(["<script>alert(1)</script>", " ok", "\n"], [-0.1, -2.0, -0.5],
                             ["<img src=x onerror=alert(1)>", "t", "t"])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count('class="tok"') == 3


def test_loopback_rules(monkeypatch):
    monkeypatch.delenv("LLMRL_ALLOW_CUSTOM_CODE", raising=False)
    for address in ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"]:
        assert is_loopback_address(address)
        assert custom_code_allowed(address)[0]
    for address in ["0.0.0.0", "", None, "192.168.1.5", "example.org"]:
        allowed, reason = custom_code_allowed(address)
        assert not allowed and "LLMRL_ALLOW_CUSTOM_CODE=1" in reason
    monkeypatch.setenv("LLMRL_ALLOW_CUSTOM_CODE", "1")
    assert custom_code_allowed("0.0.0.0")[0]


def test_streamlit_config_binds_loopback():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in text

"""Project boundaries: the engine never imports Streamlit; its layers point one way (tests/support/layers.py);
nothing below the features names a run kind; rendered text is escaped; loopback rules."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import llmrl_core
from llmrl_core.core.security import custom_code_allowed, is_loopback_address
from llmrl_core.present.common import render_token_html
from tests.support.layers import find_layer_violations

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


def test_layers_point_one_way():
    assert find_layer_violations(ROOT) == []


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_layer_check_fails_on_a_planted_upward_import(tmp_path):
    _plant(tmp_path, {
        "llmrl_core/__init__.py": "", "llmrl_core/cli.py": "import llmrl_core.present.report\n",  # the root: free
        "llmrl_core/core/__init__.py": "", "llmrl_core/core/paths.py": "import os\n",
        "llmrl_core/core/config.py": "def load():\n    from llmrl_core.runs.store import RunStore  # deferred, still up\n",
        "llmrl_core/runs/__init__.py": "", "llmrl_core/runs/store.py": "from llmrl_core.core import paths\n",
        "llmrl_core/runs/table.py": "from ..present import report\n",  # relative, up two layers
        "llmrl_core/gym/__init__.py": "", "llmrl_core/gym/job.py": "from llmrl_core.runs.store import RunStore\n",
        "llmrl_core/lm_rl/__init__.py": "", "llmrl_core/lm_rl/job.py": "import llmrl_core.gym.job\n",  # sideways
        "llmrl_core/present/__init__.py": "", "llmrl_core/present/report.py": "from llmrl_core.gym import job\n",
    })
    found = find_layer_violations(tmp_path, allowed={})
    assert found == [
        "llmrl_core.core.config:2 (core) imports llmrl_core.runs.store (runs)",
        "llmrl_core.lm_rl.job:1 (lm_rl) imports llmrl_core.gym.job (gym)",
        "llmrl_core.runs.table:1 (runs) imports llmrl_core.present (present)",
    ], found
    allowed = {("llmrl_core.lm_rl", "llmrl_core.gym"): "planted", ("llmrl_core.gym", "llmrl_core.lm_rl"): "stale"}
    found = find_layer_violations(tmp_path, allowed=allowed)
    assert "llmrl_core.lm_rl.job:1 (lm_rl) imports llmrl_core.gym.job (gym)" not in found
    assert "ALLOWED arrow llmrl_core.gym -> llmrl_core.lm_rl is no longer used: remove it" in found


def test_nothing_below_the_features_names_a_run_kind():
    pattern = re.compile(r"\bkind\s*[!=]=|\[[\"']kind[\"']\]\s*[!=]=\s*[\"']")
    for folder in ("llmrl_core/runs", "llmrl_core/present", "pages", "ui"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not pattern.search(line), f"{path}:{number} names a kind; read its RunKindSpec: {line.strip()}"


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

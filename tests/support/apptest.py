"""AppTest helpers the page tests share: open a page script by its path under pages/."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def open_page(page: str, timeout: float = 60) -> AppTest:
    """Run the page script `page` (e.g. "gymnasium/gym.py") once and check it raised nothing."""
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=timeout)
    at.run()
    assert not at.exception, at.exception
    return at


def read_shown_messages(at: AppTest) -> str:
    """Every error and warning on the page, Markdown escapes removed."""
    return " ".join(e.value.replace("\\", "") for e in [*at.error, *at.warning])

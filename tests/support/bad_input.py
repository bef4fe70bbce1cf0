"""What the bad-input tests share: hostile strings and a count of the session store's rows."""

from __future__ import annotations

import sqlite3

MARKUP = "<script>alert(1)</script> **bold** :red[x] $x$"
# Enough "../" to climb to / from any checkout depth (extra ones stay at /),
# so the path names the real /etc/passwd wherever CI clones the repo.
TRAVERSAL = "../" * 24 + "etc/passwd"


def count_store_rows() -> tuple[int, int]:
    """(runs, metrics rows) in the session's store: a refused input must leave both as they were."""
    from llmrl_core.core.paths import get_store_path
    from llmrl_core.runs import RunStore

    RunStore()  # creates the tables on first use
    with sqlite3.connect(get_store_path()) as con:
        return (con.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])

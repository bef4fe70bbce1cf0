"""AppTest of "What does one GRPO step do?" (ui/guided_step.py) on the front page: the bundled step before any run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.support.apptest import ROOT


def test_front_page_walks_through_the_bundled_step(workbench_home):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)  # the front page is app.py's default page
    at.run()
    assert not at.exception, at.exception
    expander = at.expander[0]
    assert "What does one GRPO step do?" in expander.label
    assert not at.get("latex"), "closed, the guide draws nothing"
    at.session_state["home_guide"] = True  # open it, as a click does
    at.run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "a step of the bundled model" in captions or "of your newest run" in captions
    latex = " ".join(e.value for e in at.get("latex"))
    assert r"\mathrm{std}" in latex and "c_{i,t}" in latex  # GRPO's advantage, the push written out
    assert "The trainer recorded a push of" in captions
    markdown = " ".join(m.value for m in at.markdown)
    assert "GRPO (this run)" in markdown and "RLOO" in markdown
    assert at.get("html"), "the pushed tokens are drawn"
    at.selectbox(key="home_guide_group").set_value(1).run()
    assert not at.exception, at.exception

"""Helpers the tests (and benches) share: the real-browser harness, AppTest helpers and plug-in jobs."""

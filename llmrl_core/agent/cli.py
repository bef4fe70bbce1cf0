"""`python -m llmrl_core agent`: being written (issue 11); adds no command yet."""


def add_cli(subparsers) -> None:
    """Add the `agent` command (none yet)."""

"""`python -m llmrl_core export|report`: being written (issue 10); adds no command yet."""


def add_cli(subparsers) -> None:
    """Add the `export` and `report` commands (none yet)."""

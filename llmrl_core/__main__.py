"""Entry point for `python -m llmrl_core`."""

import sys

from llmrl_core.cli import main

sys.exit(main())

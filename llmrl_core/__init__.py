"""LLM·RL Workbench engine: model loading, generation, RL jobs and the run store.

This package never imports Streamlit, so every job runs headless from the CLI
(`python -m llmrl_core ...`) and writes to the same store the dashboard reads.
"""

__version__ = "0.1.0"

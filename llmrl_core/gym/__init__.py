"""Gymnasium agents (job kind, CLI verb and page "gym"): configs, the SB3 job, its store callbacks, and episode capture for replay.

Import the pieces from their modules (config, job, callback, episodes); this package keeps
its import cheap so the CLI and pages load fast.
"""

from llmrl_core.gym.config import ALGOS, ENVS, GymConfig, compatible_algos, check_env_algo, make_gym_config

__all__ = ["ALGOS", "ENVS", "GymConfig", "compatible_algos", "check_env_algo", "make_gym_config"]

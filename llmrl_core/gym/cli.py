"""`python -m llmrl_core gym ...`: train a Gymnasium agent headless, through the same job as the page.

Examples:
  python -m llmrl_core gym --env CartPole-v1 --algo ppo
  python -m llmrl_core gym --env CartPole-v1 --algo dqn --steps 30000 --seed 1 --set batch_size=128
  python -m llmrl_core gym --algo ppo --stop-when-solved --init-from path/to/agent.zip
  python -m llmrl_core gym --config run.yaml --steps 20000     (a YAML from `export ID --what config`)
The run appears live on the dashboard's Gym page; `runs stop <id>` stops it from anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmrl_core.core.config import parse_set_items
from llmrl_core.core.errors import InputError
from llmrl_core.runs.foreground import run_and_report
from llmrl_core.gym.algorithms import get_gym_algorithm
from llmrl_core.gym.config import ALGOS, ENVS, GymConfig, make_gym_config


def _cmd_gym(args: argparse.Namespace) -> int:
    """Validate the settings, run the job in the foreground, print where its results are."""
    # A --config file is the starting point; --env/--algo, the flags and --set override it (last wins).
    overrides: dict[str, Any] = {}
    env, algo = args.env, args.algo
    if args.config:
        loaded = GymConfig.load(args.config).to_dict()  # validated, with the usual field messages
        env, algo = env or loaded["env_id"], algo or loaded["algo"]
        if algo == loaded["algo"]:
            overrides.update(loaded.pop("params"))  # another algorithm has other hyperparameters
        overrides.update({k: v for k, v in loaded.items() if k not in ("env_id", "algo", "params")})
    env, algo = env or "CartPole-v1", algo or "ppo"
    # --set names a run setting or one of the algorithm's hyperparameters; values are read as YAML.
    overrides.update(parse_set_items(args.set, (GymConfig, get_gym_algorithm(algo).params_class)))
    for key in ("seed", "n_envs", "eval_freq", "eval_episodes", "init_from"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.steps is not None:
        overrides["total_steps"] = args.steps
    if args.stop_when_solved:
        overrides["stop_when_solved"] = True
    config = make_gym_config(env, algo, **overrides)
    if config.init_from and (Path(config.init_from).suffix.lower() != ".zip" or not Path(config.init_from).expanduser().is_file()):
        raise InputError(f"--init-from: no saved agent at {config.init_from!r}; give the path of an SB3 .zip "
                         "(the Gym page lists each run's agent).")
    if args.name is not None and not args.name.strip():
        raise InputError("--name is empty; give the run a name, or leave --name out for 'ALGO · env'.")
    name = args.name or f"{config.algo.upper()} · {config.env_id}"
    print(f"Training {config.algo.upper()} on {config.env_id} for {config.total_steps} steps; "
          f"watch it live on the dashboard's Gym page.")
    return run_and_report("gym", config.to_dict(), name, config.total_steps, args.json, queue=args.queue)


def add_cli(subparsers: Any) -> None:
    """Register the `gym` command."""
    gym = subparsers.add_parser("gym", help="train a Gymnasium agent (PPO, A2C, DQN, random baseline)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gym.add_argument("--config", help="a YAML file of GymConfig fields (as `export ID --what config` writes)")
    gym.add_argument("--env", choices=list(ENVS), help="environment (default: the config's, else CartPole-v1)")
    gym.add_argument("--algo", choices=list(ALGOS), help="algorithm (default: the config's, else ppo)")
    gym.add_argument("--steps", type=int, help="environment steps (default: RL Zoo's budget for the pair)")
    gym.add_argument("--seed", type=int, help="seed (default 0)")
    gym.add_argument("--n-envs", dest="n_envs", type=int, help="parallel environments")
    gym.add_argument("--eval-freq", dest="eval_freq", type=int, help="steps between evaluations (each records an episode)")
    gym.add_argument("--eval-episodes", dest="eval_episodes", type=int, help="episodes per evaluation")
    gym.add_argument("--stop-when-solved", action="store_true", help="end once the evaluation mean reaches the solved line")
    gym.add_argument("--init-from", dest="init_from", help="a saved agent .zip to keep training")
    gym.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a setting or hyperparameter, e.g. --set gamma=0.99 or --set net_arch=[64,64] "
                          "(the value is read as YAML, then as the setting's type; repeatable)")
    gym.add_argument("--name", help="run name")
    gym.add_argument("--queue", action="store_true", help="wait in the run queue for a free slot (default: start now)")
    gym.add_argument("--json", action="store_true", help="print the result as JSON")
    gym.set_defaults(func=_cmd_gym)

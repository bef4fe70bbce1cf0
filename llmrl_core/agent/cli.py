"""`python -m llmrl_core agent ...`: the language model plays a Gymnasium environment and learns, headless.

Examples:
  python -m llmrl_core agent --env CartPole-v1 --model bundled --algo ppo --steps 4096
  python -m llmrl_core agent --preset cartpole-5-minutes       # the Agent page's preset: learns within 5 minutes
  python -m llmrl_core agent --algo reinforce --minutes 15 --set learning_rate=1e-4 --set n_envs=8
  python -m llmrl_core agent --env FrozenLake-v1 --episodes 200 --set "action_words=[left, down, right, up]"
The same job as the dashboard's Agent page, writing to the same store: the run appears there live.
"""

from __future__ import annotations

import argparse
from typing import Any

from llmrl_core.agent.config import AGENT_PRESETS, ALGOS, AgentConfig
from llmrl_core.agent.text_env import ADAPTERS, get_adapter, make_example_observation, render_state
from llmrl_core.core.config import get_preset_overrides, parse_set_items
from llmrl_core.core.errors import InputError
from llmrl_core.runs.foreground import run_and_report


def make_cli_config(args: argparse.Namespace) -> AgentConfig:
    """The run's config: the preset's values (--preset), then --set, then the flags (flags win)."""
    settings: dict[str, Any] = get_preset_overrides(AGENT_PRESETS, args.preset) if args.preset else {}
    settings.update(parse_set_items(args.set, AgentConfig))
    flags = {"env_id": args.env, "model": args.model, "algo": args.algo, "total_steps": args.steps,
             "max_episodes": args.episodes, "max_minutes": args.minutes, "seed": args.seed, "n_envs": args.n_envs,
             "device": args.device}
    settings.update({k: v for k, v in flags.items() if v is not None})
    if args.episodes is not None and args.steps is None:
        settings.setdefault("total_steps", 100_000_000)  # the episode count is the budget
    return AgentConfig.from_dict(settings)


def check_prompt(config: AgentConfig) -> dict[str, int] | None:
    """The tokenizer's template checks before anything starts (None when the tokenizer is not at hand offline)."""
    from llmrl_core.agent.policy import check_prompt_tokens, load_prompt_tokenizer

    found = load_prompt_tokenizer(config.model)
    if found is None:
        return None
    tokenizer, context = found
    adapter = get_adapter(config.env_id)
    state = render_state(adapter, config.state_template, make_example_observation(adapter))
    return check_prompt_tokens(tokenizer, config.instruction, config.action_words, state, context)


def _cmd_agent(args: argparse.Namespace) -> int:
    """Validate, check the template with the tokenizer, run the job in the foreground, print the summary."""
    config = make_cli_config(args)
    check_prompt(config)
    if args.name is not None and not args.name.strip():
        raise InputError("--name is empty; give the run a name, or leave --name out for 'LM ALGO · env'.")
    name = args.name or f"LM {config.algo.upper()} · {config.env_id}"
    print(f"The language model plays {config.env_id} ({config.algo.upper()}, {config.total_steps} steps); "
          "watch it live on the dashboard's Agent page.")
    return run_and_report("agent", config.to_dict(), name, config.total_steps, args.json, queue=args.queue)


def add_cli(subparsers: Any) -> None:
    """Register the `agent` command."""
    cmd = subparsers.add_parser("agent", help="the language model as a Gymnasium agent (PPO, REINFORCE)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("--preset", help=f"start from a preset of the Agent page ({', '.join(AGENT_PRESETS)})")
    cmd.add_argument("--env", choices=list(ADAPTERS), help="environment (default CartPole-v1)")
    cmd.add_argument("--model", help="model spec (default: bundled)")
    cmd.add_argument("--algo", choices=list(ALGOS), help="algorithm (default ppo)")
    cmd.add_argument("--steps", type=int, help="environment steps to train for")
    cmd.add_argument("--episodes", type=int, help="stop after this many training episodes")
    cmd.add_argument("--minutes", type=float, help="stop training after this many minutes")
    cmd.add_argument("--seed", type=int, help="seed (default 0)")
    cmd.add_argument("--n-envs", dest="n_envs", type=int, help="environments batched per forward pass (default 16)")
    cmd.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs (default auto)")
    cmd.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="any AgentConfig setting, e.g. --set learning_rate=1e-4 (repeatable)")
    cmd.add_argument("--name", help="run name")
    cmd.add_argument("--queue", action="store_true", help="wait in the run queue for a free slot (default: start now)")
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    cmd.set_defaults(func=_cmd_agent)

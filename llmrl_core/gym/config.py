"""Settings of a Gymnasium training run: the environment, the algorithm and its hyperparameters.

`GymConfig` is one run: environment, algorithm, budget, evaluation cadence, and the algorithm's
hyperparameters as a dict that its params dataclass (algorithms.py) validates. It is a config
dataclass on the shared base (llmrl_core/core/config.py: field docs, type checks, YAML, --set).
`make_gym_config(env_id, algo)` starts from RL Zoo's tuned settings
(rl-baselines3-zoo/hyperparams/{ppo,a2c,dqn}.yml) where they exist.

Left out on purpose: RL Zoo's observation normalisation (VecNormalize) for Acrobot and
MountainCar; those pairs still train, only more slowly than in the Zoo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from llmrl_core.core.config import ConfigBase, suggest
from llmrl_core.core.errors import InputError
from llmrl_core.gym.algorithms import (  # noqa: F401  (the params classes are imported from here too)
    GYM_ALGORITHMS,
    A2CParams,
    DQNParams,
    GymAlgorithm,
    PPOParams,
    RandomParams,
    get_gym_algorithm,
)

# ----------------------------------------------------------------------------- environments


@dataclass(frozen=True)
class EnvInfo:
    """What the workbench knows about one environment."""

    env_id: str
    """Gymnasium id"""
    discrete: bool
    """True when actions are a finite set (DQN needs that)"""
    solved_return: float | None
    """return at which Gymnasium calls the task solved (None: no official line)"""
    max_episode_steps: int
    """time limit of one episode"""
    blurb: str
    """one line for the page"""


ENVS: dict[str, EnvInfo] = {
    "CartPole-v1": EnvInfo("CartPole-v1", True, 475.0, 500, "Push a cart left or right to keep a pole upright; +1 per step, 500 at most."),
    "Acrobot-v1": EnvInfo("Acrobot-v1", True, -100.0, 500, "Swing a two-link arm so its tip rises above a line; -1 per step until it does."),
    "MountainCar-v0": EnvInfo("MountainCar-v0", True, -110.0, 200, "Rock an underpowered car up a hill; -1 per step until it reaches the flag."),
    "Pendulum-v1": EnvInfo("Pendulum-v1", False, None, 200, "Swing a pendulum up and hold it with a continuous torque; reward is minus the effort and the angle."),
}

ALGOS = tuple(GYM_ALGORITHMS)
"""Algorithms offered: SB3's PPO, A2C and DQN, plus a uniformly random policy as the baseline (see algorithms.py)."""


def check_env_algo(env_id: str, algo: str) -> None:
    """Raise InputError when `algo` cannot work on `env_id`, saying what to pick instead."""
    if not isinstance(env_id, str) or env_id not in ENVS:
        raise InputError(f"Unknown environment {env_id!r}{suggest(env_id, ENVS)}. Pick one of: {', '.join(ENVS)}.")
    algorithm = get_gym_algorithm(algo)
    if algorithm.discrete_only and not ENVS[env_id].discrete:
        others = " or ".join(a.label for a in GYM_ALGORITHMS.values() if a.trains and not a.discrete_only)
        discrete = ", ".join(e for e, info in ENVS.items() if info.discrete)
        raise InputError(
            f"{algorithm.label} picks one action out of a finite set, but {env_id} takes a continuous action. "
            f"Use {others} on {env_id}, or run {algorithm.label} on a discrete-action environment ({discrete})."
        )


def compatible_algos(env_id: str) -> list[str]:
    """The algorithms that can train on `env_id`."""
    return [name for name, a in GYM_ALGORITHMS.items() if not (a.discrete_only and not ENVS[env_id].discrete)]


# RL Zoo's tuned settings (hyperparams/*.yml); "n_envs" and "total_steps" go to GymConfig.
TUNED: dict[tuple[str, str], dict[str, Any]] = {
    ("CartPole-v1", "ppo"): dict(n_envs=8, total_steps=50_000, learning_rate=1e-3, lr_schedule="linear", n_steps=32,
                                 batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, clip_range=0.2,
                                 clip_schedule="linear", ent_coef=0.0),
    ("CartPole-v1", "a2c"): dict(n_envs=8, total_steps=200_000, ent_coef=0.0),
    ("CartPole-v1", "dqn"): dict(n_envs=1, total_steps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                                 learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                                 gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                                 net_arch=[256, 256]),
    ("Acrobot-v1", "ppo"): dict(n_envs=16, total_steps=1_000_000, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4,
                                ent_coef=0.0),
    ("Acrobot-v1", "a2c"): dict(n_envs=16, total_steps=500_000, ent_coef=0.0),
    ("Acrobot-v1", "dqn"): dict(n_envs=1, total_steps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                                learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4,
                                gradient_steps=-1, exploration_fraction=0.12, exploration_final_eps=0.1,
                                net_arch=[256, 256]),
    ("MountainCar-v0", "ppo"): dict(n_envs=16, total_steps=1_000_000, n_steps=16, gae_lambda=0.98, gamma=0.99,
                                    n_epochs=4, ent_coef=0.0),
    ("MountainCar-v0", "a2c"): dict(n_envs=16, total_steps=1_000_000, ent_coef=0.0),
    ("MountainCar-v0", "dqn"): dict(n_envs=1, total_steps=120_000, learning_rate=4e-3, batch_size=128,
                                    buffer_size=10_000, learning_starts=1000, gamma=0.98, target_update_interval=600,
                                    train_freq=16, gradient_steps=8, exploration_fraction=0.2,
                                    exploration_final_eps=0.07, net_arch=[256, 256]),
    ("Pendulum-v1", "ppo"): dict(n_envs=4, total_steps=100_000, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10,
                                 ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, use_sde=True),
    ("Pendulum-v1", "a2c"): dict(n_envs=8, total_steps=1_000_000, n_steps=8, gae_lambda=0.9, vf_coef=0.4, gamma=0.9,
                                 learning_rate=7e-4, lr_schedule="linear", use_sde=True),
}


# ----------------------------------------------------------------------------- the run


@dataclass
class GymConfig(ConfigBase):
    """One training run: environment, algorithm, budget, evaluation cadence and the algorithm's settings."""

    CONFIG_LABEL = "gym config"
    UNKNOWN_LABEL = "gym setting"
    LOAD_HINT = "write one with GymConfig().save(path) or start from make_gym_config(env_id, algo)"
    COERCE_TEXT = False  # typed values only: forms and --set coerce text before it gets here
    FIELD_CHOICES = {"vec_env": ("dummy", "subproc")}

    env_id: str = "CartPole-v1"
    """Gymnasium environment id"""
    algo: str = "ppo"
    """ppo, a2c, dqn, or random (the untrained baseline)"""
    total_steps: int = 50_000
    """environment steps to train for (summed over parallel environments)"""
    seed: int = 0
    """seeds the environments, the networks and exploration"""
    n_envs: int = 8
    """environments stepped in parallel (DQN: 1 is usual)"""
    vec_env: str = "dummy"
    """'dummy' steps the environments in this process; 'subproc' gives each its own process (SB3's SubprocVecEnv): worth it only when one env step costs about a millisecond or more, not for CartPole (bench/bench_gym_vec.py)"""
    eval_freq: int = 1000
    """environment steps between evaluations; each evaluation records one episode for replay"""
    eval_episodes: int = 5
    """deterministic episodes per evaluation (their mean is eval/mean_reward)"""
    stop_when_solved: bool = False
    """end training once eval/mean_reward reaches the environment's solved line"""
    torch_threads: int = 1
    """CPU threads for torch while this run lasts (tiny networks train fastest on one; process-wide)"""
    init_from: str | None = None
    """a saved agent (SB3 .zip) to keep training instead of starting fresh"""
    params: dict[str, Any] = field(default_factory=dict)
    """the algorithm's hyperparameters (see PPOParams, A2CParams, DQNParams)"""
    report_to: list[str] = field(default_factory=list)
    """trackers that mirror the metrics: tensorboard, mlflow, wandb, trackio (TRL's report_to)"""

    def __post_init__(self) -> None:
        check_env_algo(self.env_id, self.algo)
        self.check_types()
        if self.init_from is not None and not self.init_from.strip():
            self.init_from = None  # an empty box: start fresh
        _check(self.total_steps >= 1, f"total_steps must be at least 1 (got {self.total_steps}).")
        _check(self.total_steps <= 50_000_000, f"total_steps above 50 million would run for days on a CPU; lower it (got {self.total_steps}).")
        _check(1 <= self.n_envs <= 64, f"n_envs must be between 1 and 64 (got {self.n_envs}).")
        _check(self.vec_env in ("dummy", "subproc"), f"vec_env must be 'dummy' or 'subproc' (got {self.vec_env!r}).")
        _check(0 <= self.seed < 2**32, f"seed must be a whole number from 0 to 4294967295 (got {self.seed}).")
        _check(self.eval_freq >= 1, f"eval_freq must be at least 1 step (got {self.eval_freq}); 1000 suits CartPole.")
        _check(1 <= self.torch_threads <= 256, f"torch_threads must be at least 1 (got {self.torch_threads}).")
        _check(1 <= self.eval_episodes <= 100, f"eval_episodes must be between 1 and 100 (got {self.eval_episodes}).")
        _check(not (self.stop_when_solved and ENVS[self.env_id].solved_return is None),
               f"{self.env_id} has no solved line, so stop_when_solved cannot fire; untick it.")
        from llmrl_core.runs.trackers import check_report_to

        self.report_to = check_report_to(self.report_to)
        self.params = asdict(self.make_params())  # validates and fills the defaults
        if self.algorithm.validate is not None:
            self.algorithm.validate(self)

    def make_params(self) -> Any:
        """The algorithm's hyperparameters as their validated dataclass."""
        cls = self.algorithm.params_class
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(self.params) - known, key=str)
        if unknown:
            named = ", ".join(f"{k}{suggest(k, known | _RUN_FIELDS)}" for k in unknown)
            raise InputError(
                f"{self.algo.upper()} has no setting {named}; its settings are: {', '.join(sorted(known)) or 'none'}."
            )
        try:
            return cls(**self.params)
        except TypeError as err:
            raise InputError(f"Bad {self.algo.upper()} settings: {err}.") from None

    @property
    def algorithm(self) -> GymAlgorithm:
        """The algorithm's registry entry: params class, SB3 class, schedules, checks."""
        return GYM_ALGORITHMS[self.algo]

    @property
    def env(self) -> EnvInfo:
        """What the workbench knows about the environment."""
        return ENVS[self.env_id]

    @property
    def solved_return(self) -> float | None:
        """The environment's solved line (None when it has none)."""
        return ENVS[self.env_id].solved_return


_RUN_FIELDS = {f.name for f in fields(GymConfig)} - {"params"}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def make_gym_config(env_id: str = "CartPole-v1", algo: str = "ppo", **overrides: Any) -> GymConfig:
    """A validated config that starts from RL Zoo's tuned settings for (env_id, algo), then applies `overrides`.

    Overrides may name GymConfig fields or hyperparameters (they go to `params`).
    """
    check_env_algo(env_id, algo)
    tuned = dict(TUNED.get((env_id, algo), {}))
    run: dict[str, Any] = {"env_id": env_id, "algo": algo}
    params: dict[str, Any] = {}
    if GYM_ALGORITHMS[algo].default_n_envs is not None:
        run["n_envs"] = GYM_ALGORITHMS[algo].default_n_envs
    for source in (tuned, overrides):
        for key, value in source.items():
            if key == "params":
                params.update(value or {})
            elif key in _RUN_FIELDS:
                run[key] = value
            else:
                params[key] = value
    return GymConfig(**run, params=params)

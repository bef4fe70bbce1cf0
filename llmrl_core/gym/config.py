"""Settings of a Gymnasium training run: the environment, the algorithm and its hyperparameters.

Flat CleanRL-style dataclasses, one per algorithm, with Stable-Baselines3's own names, so a
setting reads the same here, in SB3's docs and in RL Zoo's tuned files. Every dataclass
validates itself in __post_init__ and raises InputError with a message that says what to
change. `make_gym_config(env_id, algo)` starts from RL Zoo's tuned settings
(rl-baselines3-zoo/hyperparams/{ppo,a2c,dqn}.yml) where they exist.

Left out on purpose: RL Zoo's observation normalisation (VecNormalize) for Acrobot and
MountainCar; those pairs still train, only more slowly than in the Zoo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from llmrl_core.lm_rl.config import check_field_types, suggest
from llmrl_core.core.errors import InputError

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

ALGOS = ("ppo", "a2c", "dqn", "random")
"""Algorithms offered: SB3's PPO, A2C and DQN, plus a uniformly random policy as the baseline."""


def check_env_algo(env_id: str, algo: str) -> None:
    """Raise InputError when `algo` cannot work on `env_id`, saying what to pick instead."""
    if not isinstance(env_id, str) or env_id not in ENVS:
        raise InputError(f"Unknown environment {env_id!r}{suggest(env_id, ENVS)}. Pick one of: {', '.join(ENVS)}.")
    if not isinstance(algo, str) or algo not in ALGOS:
        raise InputError(f"Unknown algorithm {algo!r}{suggest(algo, ALGOS)}. Pick one of: {', '.join(ALGOS)}.")
    if algo == "dqn" and not ENVS[env_id].discrete:
        discrete = ", ".join(e for e, info in ENVS.items() if info.discrete)
        raise InputError(
            f"DQN picks one action out of a finite set, but {env_id} takes a continuous action (a torque). "
            f"Use PPO or A2C on {env_id}, or run DQN on a discrete-action environment ({discrete})."
        )


def compatible_algos(env_id: str) -> list[str]:
    """The algorithms that can train on `env_id`."""
    return [a for a in ALGOS if not (a == "dqn" and not ENVS[env_id].discrete)]


# ----------------------------------------------------------------------------- helpers


def get_field_docs(cls: type) -> dict[str, str]:
    """The one-line doc under each field of a config dataclass (what the page shows as help)."""
    import ast
    import inspect
    import textwrap

    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    except (OSError, TypeError, IndexError, AttributeError):
        return {}
    return {
        node.target.id: str(nxt.value.value)
        for node, nxt in zip(body, body[1:])
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
    }



def _check_types(obj: Any) -> None:
    """Every field holds its type (NaN and inf refused); net_arch may also be text like '64,64'."""
    if isinstance(getattr(obj, "net_arch", None), str):
        obj.net_arch = _check_net_arch(obj.net_arch)
    check_field_types(obj)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _check_net_arch(net_arch: Any) -> list[int]:
    """Normalise a network shape given as a list or as text like '64, 64'."""
    if isinstance(net_arch, str):
        parts = [p for p in net_arch.replace(" ", "").split(",") if p]
        try:
            net_arch = [int(p) for p in parts]
        except ValueError:
            raise InputError(f"net_arch must be layer widths separated by commas, like 64,64 (got {net_arch!r}).") from None
    if not isinstance(net_arch, (list, tuple)) or not all(isinstance(w, int) and not isinstance(w, bool) for w in net_arch):
        raise InputError(f"net_arch must be a list of whole layer widths, like 64,64 (got {net_arch!r}).")
    net_arch = [int(w) for w in net_arch]
    _check(1 <= len(net_arch) <= 8 and all(1 <= w <= 4096 for w in net_arch),
           f"net_arch must list 1 to 8 hidden layer widths between 1 and 4096, like 64,64 (got {net_arch}).")
    return net_arch


def _check_schedule(name: str, value: str) -> None:
    _check(value in ("constant", "linear"), f"{name} must be 'constant' or 'linear' (got {value!r}).")


def _check_discount(gamma: float) -> None:
    _check(0.0 < gamma <= 1.0, f"gamma is a discount factor: set it above 0 and at most 1, e.g. 0.99 (got {gamma}).")


def _check_lr(lr: float) -> None:
    _check(0.0 < lr <= 1.0, f"learning_rate must be above 0 and at most 1; values like 3e-4 to 1e-3 are usual (got {lr}).")


# ----------------------------------------------------------------------------- algorithms


@dataclass
class PPOParams:
    """PPO (arXiv 1707.06347) as Stable-Baselines3 implements it."""

    learning_rate: float = 3e-4
    """Adam step size at the start of training"""
    lr_schedule: str = "constant"
    """'linear' decays the learning rate to 0 over the run"""
    n_steps: int = 2048
    """steps collected per environment before each update"""
    batch_size: int = 64
    """minibatch size of each gradient step"""
    n_epochs: int = 10
    """passes over each rollout"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda (arXiv 1506.02438): bias/variance trade-off of the advantage"""
    clip_range: float = 0.2
    """PPO's ratio clip epsilon"""
    clip_schedule: str = "constant"
    """'linear' decays the clip range to 0 over the run"""
    ent_coef: float = 0.0
    """entropy bonus weight"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping norm"""
    use_sde: bool = False
    """state-dependent exploration (continuous actions only)"""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer widths of the policy and value networks"""

    def __post_init__(self) -> None:
        _check_types(self)
        _check_lr(self.learning_rate)
        _check_schedule("lr_schedule", self.lr_schedule)
        _check_schedule("clip_schedule", self.clip_schedule)
        _check(2 <= self.n_steps <= 1_000_000, f"n_steps must be between 2 and 1000000 (got {self.n_steps}); 32 to 2048 are usual.")
        _check(2 <= self.batch_size <= 1_000_000, f"batch_size must be between 2 and 1000000 (got {self.batch_size}).")
        _check(1 <= self.n_epochs <= 100, f"n_epochs must be between 1 and 100 (got {self.n_epochs}); 4 to 20 are usual.")
        _check_discount(self.gamma)
        _check(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be between 0 and 1, e.g. 0.95 (got {self.gae_lambda}).")
        _check(0.0 < self.clip_range <= 1.0, f"clip_range must be above 0 and at most 1, e.g. 0.2 (got {self.clip_range}).")
        _check(self.ent_coef >= 0, f"ent_coef must be 0 or more (got {self.ent_coef}).")
        _check(self.vf_coef >= 0, f"vf_coef must be 0 or more (got {self.vf_coef}).")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0, e.g. 0.5 (got {self.max_grad_norm}).")
        self.net_arch = _check_net_arch(self.net_arch)


@dataclass
class A2CParams:
    """A2C (arXiv 1602.01783) as Stable-Baselines3 implements it."""

    learning_rate: float = 7e-4
    """RMSprop step size at the start of training"""
    lr_schedule: str = "constant"
    """'linear' decays the learning rate to 0 over the run"""
    n_steps: int = 5
    """steps collected per environment before each update"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 1.0
    """GAE lambda; 1 gives plain n-step returns"""
    ent_coef: float = 0.0
    """entropy bonus weight"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping norm"""
    use_rms_prop: bool = True
    """RMSprop (as in the paper) instead of Adam"""
    normalize_advantage: bool = False
    """standardise advantages per update"""
    use_sde: bool = False
    """state-dependent exploration (continuous actions only)"""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer widths of the policy and value networks"""

    def __post_init__(self) -> None:
        _check_types(self)
        _check_lr(self.learning_rate)
        _check_schedule("lr_schedule", self.lr_schedule)
        _check(1 <= self.n_steps <= 1_000_000, f"n_steps must be between 1 and 1000000 (got {self.n_steps}); 5 to 32 are usual for A2C.")
        _check_discount(self.gamma)
        _check(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be between 0 and 1 (got {self.gae_lambda}).")
        _check(self.ent_coef >= 0, f"ent_coef must be 0 or more (got {self.ent_coef}).")
        _check(self.vf_coef >= 0, f"vf_coef must be 0 or more (got {self.vf_coef}).")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0, e.g. 0.5 (got {self.max_grad_norm}).")
        self.net_arch = _check_net_arch(self.net_arch)


@dataclass
class DQNParams:
    """DQN (Mnih et al. 2015, doi:10.1038/nature14236) as Stable-Baselines3 implements it."""

    learning_rate: float = 1e-4
    """Adam step size"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 100
    """steps of pure exploration before the first update"""
    batch_size: int = 32
    """transitions per gradient step"""
    tau: float = 1.0
    """target network update rate (1: hard copy)"""
    gamma: float = 0.99
    """discount factor"""
    train_freq: int = 4
    """environment steps between updates"""
    gradient_steps: int = 1
    """gradient steps per update (-1: as many as steps collected)"""
    target_update_interval: int = 10_000
    """environment steps between target network updates"""
    exploration_fraction: float = 0.1
    """share of the whole run over which epsilon decays (a longer run decays more slowly)"""
    exploration_initial_eps: float = 1.0
    """epsilon at the start"""
    exploration_final_eps: float = 0.05
    """epsilon after the decay"""
    max_grad_norm: float = 10.0
    """gradient clipping norm"""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer widths of the Q-network"""

    def __post_init__(self) -> None:
        _check_types(self)
        _check_lr(self.learning_rate)
        _check(1 <= self.batch_size <= 1_000_000, f"batch_size must be between 1 and 1000000 (got {self.batch_size}); 32 to 256 are usual.")
        _check(self.buffer_size <= 50_000_000,
               f"buffer_size {self.buffer_size} would not fit in memory (SB3 preallocates it); 100000 to 1000000 are usual.")
        _check(self.buffer_size >= self.batch_size,
               f"buffer_size ({self.buffer_size}) must hold at least one batch ({self.batch_size}); raise buffer_size, e.g. to 100000.")
        _check(self.learning_starts >= 0, f"learning_starts must be 0 or more (got {self.learning_starts}).")
        _check(0.0 < self.tau <= 1.0, f"tau must be above 0 and at most 1 (got {self.tau}); 1 copies the network outright.")
        _check_discount(self.gamma)
        _check(self.train_freq >= 1, f"train_freq must be at least 1 step (got {self.train_freq}).")
        _check(self.gradient_steps >= 1 or self.gradient_steps == -1,
               f"gradient_steps must be at least 1, or -1 for one per collected step (got {self.gradient_steps}).")
        _check(self.target_update_interval >= 1, f"target_update_interval must be at least 1 (got {self.target_update_interval}).")
        _check(0.0 <= self.exploration_fraction <= 1.0,
               f"exploration_fraction is a share of the run: set it between 0 and 1, e.g. 0.1 (got {self.exploration_fraction}).")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"{name} is a probability: set it between 0 and 1 (got {value}).")
        _check(self.exploration_final_eps <= self.exploration_initial_eps,
               f"exploration_final_eps ({self.exploration_final_eps}) must not exceed exploration_initial_eps "
               f"({self.exploration_initial_eps}): epsilon decays from the initial to the final value.")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0, e.g. 10 (got {self.max_grad_norm}).")
        self.net_arch = _check_net_arch(self.net_arch)


@dataclass
class RandomParams:
    """The random policy has no hyperparameters: it samples the action space uniformly."""

    def __post_init__(self) -> None:
        pass


PARAMS_CLASSES: dict[str, type] = {"ppo": PPOParams, "a2c": A2CParams, "dqn": DQNParams, "random": RandomParams}

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
class GymConfig:
    """One training run: environment, algorithm, budget, evaluation cadence and the algorithm's settings."""

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

    def __post_init__(self) -> None:
        check_env_algo(self.env_id, self.algo)
        _check_types(self)
        if self.init_from is not None and not self.init_from.strip():
            self.init_from = None  # an empty box: start fresh
        _check(self.total_steps >= 1, f"total_steps must be at least 1 (got {self.total_steps}).")
        _check(self.total_steps <= 50_000_000, f"total_steps above 50 million would run for days on a CPU; lower it (got {self.total_steps}).")
        _check(1 <= self.n_envs <= 64, f"n_envs must be between 1 and 64 (got {self.n_envs}).")
        _check(0 <= self.seed < 2**32, f"seed must be a whole number from 0 to 4294967295 (got {self.seed}).")
        _check(self.eval_freq >= 1, f"eval_freq must be at least 1 step (got {self.eval_freq}); 1000 suits CartPole.")
        _check(1 <= self.torch_threads <= 256, f"torch_threads must be at least 1 (got {self.torch_threads}).")
        _check(1 <= self.eval_episodes <= 100, f"eval_episodes must be between 1 and 100 (got {self.eval_episodes}).")
        _check(not (self.stop_when_solved and ENVS[self.env_id].solved_return is None),
               f"{self.env_id} has no solved line, so stop_when_solved cannot fire; untick it.")
        self.params = asdict(self.make_params())  # validates and fills the defaults
        if self.algo == "ppo":
            rollout = self.params["n_steps"] * self.n_envs
            _check(rollout > 1, "PPO needs n_steps × n_envs above 1 to estimate advantages; raise n_steps.")
            _check(self.params["batch_size"] <= rollout,
                   f"batch_size ({self.params['batch_size']}) is larger than one rollout, n_steps × n_envs = {rollout}; "
                   f"lower batch_size to {rollout} or less, or raise n_steps.")
        if self.algo in ("ppo", "a2c") and self.params["use_sde"] and ENVS[self.env_id].discrete:
            raise InputError(f"use_sde only works with continuous actions and {self.env_id} has discrete ones; untick use_sde.")
        if self.algo == "dqn" and self.params["learning_starts"] >= self.total_steps:
            raise InputError(
                f"learning_starts ({self.params['learning_starts']}) is not below total_steps ({self.total_steps}), "
                "so DQN would never learn; lower learning_starts or raise total_steps."
            )

    def make_params(self) -> Any:
        """The algorithm's hyperparameters as their validated dataclass."""
        cls = PARAMS_CLASSES[self.algo]
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
    def solved_return(self) -> float | None:
        """The environment's solved line (None when it has none)."""
        return ENVS[self.env_id].solved_return

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what the run store keeps as the run's config)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GymConfig":
        """Build and validate from a dict, naming any unknown key."""
        if not isinstance(data, Mapping):
            raise InputError(f"A gym config must be a mapping of setting: value (got {type(data).__name__}).")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            named = ", ".join(f"{k}{suggest(k, known)}" for k in unknown)
            raise InputError(f"Unknown gym setting {named}; known settings: {', '.join(sorted(known))}.")
        return cls(**dict(data))


_RUN_FIELDS = {f.name for f in fields(GymConfig)} - {"params"}


def make_gym_config(env_id: str = "CartPole-v1", algo: str = "ppo", **overrides: Any) -> GymConfig:
    """A validated config that starts from RL Zoo's tuned settings for (env_id, algo), then applies `overrides`.

    Overrides may name GymConfig fields or hyperparameters (they go to `params`).
    """
    check_env_algo(env_id, algo)
    tuned = dict(TUNED.get((env_id, algo), {}))
    run_fields = {f.name for f in fields(GymConfig)} - {"params"}
    run: dict[str, Any] = {"env_id": env_id, "algo": algo}
    params: dict[str, Any] = {}
    if algo in ("dqn", "random"):
        run["n_envs"] = 1
    for source in (tuned, overrides):
        for key, value in source.items():
            if key == "params":
                params.update(value or {})
            elif key in run_fields:
                run[key] = value
            else:
                params[key] = value
    return GymConfig(**run, params=params)

"""The Gymnasium algorithms in one place: each one's hyperparameters, its SB3 class and what it needs.

One flat, CleanRL-style dataclass per algorithm with Stable-Baselines3's own names, so a setting
reads the same here, in SB3's docs and in RL Zoo's tuned files; each validates itself and raises
InputError with a message that says what to change. `GYM_ALGORITHMS` maps a name to a
`GymAlgorithm`: label, params class, SB3 class, whether it needs discrete actions, its linear
schedules and its checks against the whole run. The config (config.py), the job (job.py), the CLI
and the page read it instead of branching on the algorithm's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from llmrl_core.core.config import ConfigBase, suggest
from llmrl_core.core.errors import InputError


class GymRunConfig(Protocol):
    """The GymConfig fields the algorithms' whole-run checks read. GymConfig has them; this module names the
    protocol instead, because gym/config.py imports the algorithms."""

    env_id: str  # the Gymnasium id
    n_envs: int  # parallel environments
    total_steps: int  # environment steps in all
    params: dict[str, Any]  # the algorithm's settings, by name

    @property
    def env(self) -> Any: ...  # the environment's EnvInfo (its `discrete`)


SCHEDULES = ("constant", "linear")


# ----------------------------------------------------------------------------- checks the params share


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def _check_net_arch(net_arch: list[int]) -> None:
    """1 to 8 hidden layers of 1 to 4096 units (the type check made it a list of whole numbers)."""
    _check(1 <= len(net_arch) <= 8 and all(1 <= w <= 4096 for w in net_arch),
           f"net_arch must list 1 to 8 hidden layer widths between 1 and 4096, like 64,64 (got {net_arch}).")


def _check_discount(gamma: float) -> None:
    _check(0.0 < gamma <= 1.0, f"gamma is a discount factor: set it above 0 and at most 1, e.g. 0.99 (got {gamma}).")


def _check_lr(lr: float) -> None:
    _check(0.0 < lr <= 1.0, f"learning_rate must be above 0 and at most 1; values like 3e-4 to 1e-3 are usual (got {lr}).")


# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class PPOParams(ConfigBase):
    """PPO (arXiv 1707.06347) as Stable-Baselines3 implements it."""

    CONFIG_LABEL = "PPO settings"
    FIELD_CHOICES = {"lr_schedule": SCHEDULES, "clip_schedule": SCHEDULES}
    COERCE_TEXT = False

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
        self.check_types()
        _check_lr(self.learning_rate)
        _check(2 <= self.n_steps <= 1_000_000, f"n_steps must be between 2 and 1000000 (got {self.n_steps}); 32 to 2048 are usual.")
        _check(2 <= self.batch_size <= 1_000_000, f"batch_size must be between 2 and 1000000 (got {self.batch_size}).")
        _check(1 <= self.n_epochs <= 100, f"n_epochs must be between 1 and 100 (got {self.n_epochs}); 4 to 20 are usual.")
        _check_discount(self.gamma)
        _check(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be between 0 and 1, e.g. 0.95 (got {self.gae_lambda}).")
        _check(0.0 < self.clip_range <= 1.0, f"clip_range must be above 0 and at most 1, e.g. 0.2 (got {self.clip_range}).")
        _check(self.ent_coef >= 0, f"ent_coef must be 0 or more (got {self.ent_coef}).")
        _check(self.vf_coef >= 0, f"vf_coef must be 0 or more (got {self.vf_coef}).")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0, e.g. 0.5 (got {self.max_grad_norm}).")
        _check_net_arch(self.net_arch)


@dataclass
class A2CParams(ConfigBase):
    """A2C (arXiv 1602.01783) as Stable-Baselines3 implements it."""

    CONFIG_LABEL = "A2C settings"
    FIELD_CHOICES = {"lr_schedule": SCHEDULES}
    COERCE_TEXT = False

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
        self.check_types()
        _check_lr(self.learning_rate)
        _check(1 <= self.n_steps <= 1_000_000, f"n_steps must be between 1 and 1000000 (got {self.n_steps}); 5 to 32 are usual for A2C.")
        _check_discount(self.gamma)
        _check(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be between 0 and 1 (got {self.gae_lambda}).")
        _check(self.ent_coef >= 0, f"ent_coef must be 0 or more (got {self.ent_coef}).")
        _check(self.vf_coef >= 0, f"vf_coef must be 0 or more (got {self.vf_coef}).")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0, e.g. 0.5 (got {self.max_grad_norm}).")
        _check_net_arch(self.net_arch)


@dataclass
class DQNParams(ConfigBase):
    """DQN (Mnih et al. 2015, doi:10.1038/nature14236) as Stable-Baselines3 implements it."""

    CONFIG_LABEL = "DQN settings"
    COERCE_TEXT = False

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
        self.check_types()
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
        _check_net_arch(self.net_arch)


@dataclass
class RandomParams(ConfigBase):
    """The random policy has no hyperparameters: it samples the action space uniformly."""

    CONFIG_LABEL = "random policy settings"


# ----------------------------------------------------------------------------- checks against the whole run


def _check_use_sde(config: GymRunConfig) -> None:
    if config.params["use_sde"] and config.env.discrete:
        raise InputError(f"use_sde only works with continuous actions and {config.env_id} has discrete ones; untick use_sde.")


def _validate_ppo(config: GymRunConfig) -> None:
    """A rollout (n_steps x n_envs) must hold more than one step and at least one minibatch."""
    rollout = config.params["n_steps"] * config.n_envs
    _check(rollout > 1, "PPO needs n_steps × n_envs above 1 to estimate advantages; raise n_steps.")
    _check(config.params["batch_size"] <= rollout,
           f"batch_size ({config.params['batch_size']}) is larger than one rollout, n_steps × n_envs = {rollout}; "
           f"lower batch_size to {rollout} or less, or raise n_steps.")
    _check_use_sde(config)


def _validate_dqn(config: GymRunConfig) -> None:
    """DQN must get past learning_starts within the run, or it never updates."""
    if config.params["learning_starts"] >= config.total_steps:
        raise InputError(
            f"learning_starts ({config.params['learning_starts']}) is not below total_steps ({config.total_steps}), "
            "so DQN would never learn; lower learning_starts or raise total_steps."
        )


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class GymAlgorithm:
    """What the workbench knows about one Gymnasium algorithm."""

    name: str
    """key in configs, the CLI and the store ('ppo')"""
    label: str
    """shown on the page's algorithm picker"""
    short: str
    """shown in run names ('PPO · CartPole-v1')"""
    params_class: type
    """the hyperparameters' dataclass"""
    sb3_class: str | None
    """Stable-Baselines3 class name; None for the random baseline, which the job plays itself"""
    discrete_only: bool = False
    """True when it picks one action out of a finite set (DQN)"""
    on_policy: bool = True
    """SB3 counts its log_interval in rollouts (on-policy) or in episodes (off-policy)"""
    default_n_envs: int | None = None
    """environments to start with when RL Zoo has no tuned value (None: GymConfig's default)"""
    schedules: tuple[tuple[str, str], ...] = ()
    """(schedule field, value field) pairs: 'linear' in the first decays the second to 0 over the run"""
    validate: Callable[[GymRunConfig], None] | None = None
    """checks against the whole run (budget, environment); raises InputError"""

    @property
    def trains(self) -> bool:
        """True when an SB3 agent learns (False for the random baseline)."""
        return self.sb3_class is not None

    def load_sb3_class(self) -> Any:
        """The Stable-Baselines3 class (imported on use: SB3 and torch are slow to import)."""
        if self.sb3_class is None:
            trainable = ", ".join(n for n, a in GYM_ALGORITHMS.items() if a.trains)
            raise InputError(f"No Stable-Baselines3 agent for {self.name!r}; pick {trainable}.")
        import stable_baselines3

        return getattr(stable_baselines3, self.sb3_class)


GYM_ALGORITHMS: dict[str, GymAlgorithm] = {
    "ppo": GymAlgorithm("ppo", "PPO", "PPO", PPOParams, "PPO",
                        schedules=(("lr_schedule", "learning_rate"), ("clip_schedule", "clip_range")),
                        validate=_validate_ppo),
    "a2c": GymAlgorithm("a2c", "A2C", "A2C", A2CParams, "A2C", schedules=(("lr_schedule", "learning_rate"),),
                        validate=_check_use_sde),
    "dqn": GymAlgorithm("dqn", "DQN", "DQN", DQNParams, "DQN", discrete_only=True, on_policy=False, default_n_envs=1,
                        validate=_validate_dqn),
    "random": GymAlgorithm("random", "Random policy (baseline)", "Random", RandomParams, None, default_n_envs=1),
}
"""Algorithms offered: SB3's PPO, A2C and DQN, plus a uniformly random policy as the baseline."""


def get_gym_algorithm(name: str) -> GymAlgorithm:
    """The registry entry for `name`; InputError with the closest name when there is none."""
    if not isinstance(name, str) or name not in GYM_ALGORITHMS:
        raise InputError(f"Unknown algorithm {name!r}{suggest(name, GYM_ALGORITHMS)}. "
                         f"Pick one of: {', '.join(GYM_ALGORITHMS)}.")
    return GYM_ALGORITHMS[name]

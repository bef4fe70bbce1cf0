"""Settings of a language-model agent run: the environment in words, the model, the algorithm, the budget.

One flat dataclass (CleanRL style, a one-line doc under every field) validated in __post_init__;
the texts (instruction, state template, action words) default to the environment's adapter
(text_env.ADAPTERS) when left empty. Checks that need the tokenizer (distinct action token
sequences, the context length) run in policy.check_tokenised before a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from llmrl_core.agent.text_env import ADAPTERS, check_template, get_adapter
from llmrl_core.core.config import ConfigBase, Preset, suggest
from llmrl_core.core.errors import InputError

ALGOS = ("ppo", "reinforce")
"""PPO with a value head on the last hidden state (GLAM, arXiv 2302.02662) or REINFORCE with a learned baseline."""
NORMALISATIONS = ("token", "word", "none")
"""TWOSOME (arXiv 2401.14151): an action's log-prob divided by its token count, its word count, or not at all."""


@dataclass
class AgentConfig(ConfigBase):
    """One language-model agent run."""

    CONFIG_LABEL: ClassVar[str] = "agent config"
    UNKNOWN_LABEL: ClassVar[str] = "agent setting"

    # ------------------------------------------------------------------ what plays
    env_id: str = "CartPole-v1"
    """Gymnasium environment with a text view (CartPole-v1, FrozenLake-v1)"""
    model: str = "bundled"
    """model spec: 'bundled', a folder, a .gguf file or a Hub id"""
    instruction: str | None = None
    """constant prompt prefix (its key/value cache is computed once); empty: the environment's default"""
    state_template: str | None = None
    """one observation in words, with {field} placeholders; empty: the environment's default"""
    action_words: list[str] | None = None
    """one word per action, in the environment's order; empty: the environment's default"""
    normalisation: str = "token"
    """TWOSOME normalisation of an action's log-prob: 'token' (per token), 'word' (per word) or 'none'"""

    # ------------------------------------------------------------------ algorithm
    algo: str = "ppo"
    """'ppo' (clipped ratio, value head, GAE) or 'reinforce' (Monte Carlo returns minus the value baseline)"""
    learning_rate: float = 1e-3
    """AdamW step size of the model's trainable weights (LoRA adapters or all weights)"""
    value_learning_rate: float = 1e-3
    """AdamW step size of the value head"""
    n_steps: int = 16
    """steps collected per environment before each update"""
    n_epochs: int = 2
    """passes over each rollout (PPO; REINFORCE always makes one)"""
    minibatch_size: int = 64
    """transitions per gradient step"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda (arXiv 1506.02438); REINFORCE uses 1 (full Monte Carlo returns)"""
    clip_range: float = 0.2
    """PPO's ratio clip epsilon"""
    ent_coef: float = 0.05
    """entropy bonus weight (over the action distribution); keeps both actions sampled while the policy learns"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping norm, applied to the adapters and to the value head each on its own"""
    adam_eps: float = 1e-8
    """AdamW's eps; adapters' gradients are small (1e-3 and below), and 1e-5 would swallow them"""
    normalize_values: bool = True
    """value head learns returns normalised by their running mean and std (raw CartPole returns reach 100)"""
    share_value_gradients: bool = False
    """let the value loss train the model too (GLAM); off: the value head learns alone on the model's features"""

    # ------------------------------------------------------------------ fine-tuning
    use_lora: bool = True
    """train LoRA adapters (the model stays frozen); off: full fine-tuning"""
    lora_r: int = 8
    """LoRA rank"""
    lora_alpha: int = 16
    """LoRA scaling numerator"""
    lora_dropout: float = 0.0
    """LoRA dropout"""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """layers that get adapters ('all-linear', or names like q_proj, v_proj)"""
    lora_last_layers: int = 4
    """adapters only in the last N transformer blocks (0, or N at least the model's blocks: every block); backward then
    stops below them, a cheaper update"""

    # ------------------------------------------------------------------ budget and evaluation
    n_envs: int = 16
    """environments stepped in parallel, batched into one forward pass per step"""
    total_steps: int = 4096
    """environment steps to train for (summed over environments)"""
    max_episodes: int = 0
    """stop after this many finished training episodes (0: no limit)"""
    max_minutes: float = 0.0
    """stop training after this many minutes (0: no limit); the evaluations come on top"""
    eval_episodes: int = 20
    """episodes of the zero-shot and the final evaluation (and of the random baseline)"""
    greedy_eval: bool = True
    """evaluate with the most probable action (off: sample, as in training)"""
    seed: int = 0
    """seeds the environments, the sampling and the adapters' initialisation"""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda'"""
    torch_threads: int = 0
    """CPU threads for torch (0: leave torch's choice)"""

    def __post_init__(self) -> None:
        self.check_types()
        if self.env_id not in ADAPTERS:
            raise InputError(f"Unknown environment {self.env_id!r}{suggest(self.env_id, ADAPTERS)}; the agent plays "
                             f"{', '.join(ADAPTERS)}.")
        adapter = get_adapter(self.env_id)
        if not self.instruction:
            self.instruction = adapter.instruction
        if not self.state_template:
            self.state_template = adapter.state_template
        if not self.action_words:
            self.action_words = list(adapter.action_words)
        if isinstance(self.action_words, str):
            self.action_words = [w.strip() for w in self.action_words.split(",")]
        check_template(adapter, self.instruction, self.state_template, self.action_words)
        _check(isinstance(self.model, str) and self.model.strip() != "", "model is empty: give a model spec, e.g. 'bundled'.")
        _check(self.algo in ALGOS, f"Unknown algorithm {self.algo!r}{suggest(self.algo, ALGOS)}; pick one of {', '.join(ALGOS)}.")
        _check(self.normalisation in NORMALISATIONS,
               f"normalisation must be one of {', '.join(NORMALISATIONS)} (got {self.normalisation!r}).")
        _check(0.0 < self.learning_rate <= 1.0, f"learning_rate must be above 0 and at most 1, e.g. 3e-4 (got {self.learning_rate}).")
        _check(0.0 < self.value_learning_rate <= 1.0,
               f"value_learning_rate must be above 0 and at most 1, e.g. 1e-3 (got {self.value_learning_rate}).")
        _check(1 <= self.n_steps <= 4096, f"n_steps must be between 1 and 4096 (got {self.n_steps}); 16 to 128 are usual.")
        _check(1 <= self.n_epochs <= 50, f"n_epochs must be between 1 and 50 (got {self.n_epochs}).")
        _check(1 <= self.minibatch_size <= 4096, f"minibatch_size must be between 1 and 4096 (got {self.minibatch_size}).")
        _check(0.0 < self.gamma <= 1.0, f"gamma is a discount factor: set it above 0 and at most 1 (got {self.gamma}).")
        _check(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be between 0 and 1 (got {self.gae_lambda}).")
        _check(0.0 < self.clip_range <= 1.0, f"clip_range must be above 0 and at most 1, e.g. 0.2 (got {self.clip_range}).")
        _check(self.ent_coef >= 0, f"ent_coef must be 0 or more (got {self.ent_coef}).")
        _check(self.vf_coef >= 0, f"vf_coef must be 0 or more (got {self.vf_coef}).")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be above 0 (got {self.max_grad_norm}).")
        _check(0.0 < self.adam_eps <= 1e-3, f"adam_eps must be above 0 and at most 1e-3, e.g. 1e-8 (got {self.adam_eps}).")
        _check(1 <= self.lora_r <= 1024, f"lora_r must be between 1 and 1024 (got {self.lora_r}).")
        _check(self.lora_alpha >= 1, f"lora_alpha must be at least 1 (got {self.lora_alpha}).")
        _check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be at least 0 and below 1 (got {self.lora_dropout}).")
        _check(bool(self.lora_target_modules), "lora_target_modules is empty: name layers, or use ['all-linear'].")
        _check(0 <= self.lora_last_layers <= 1024, f"lora_last_layers must be 0 (every block) or a number of blocks (got {self.lora_last_layers}).")
        _check(1 <= self.n_envs <= 256, f"n_envs must be between 1 and 256 (got {self.n_envs}).")
        _check(1 <= self.total_steps <= 100_000_000, f"total_steps must be between 1 and 100000000 (got {self.total_steps}).")
        _check(self.max_episodes >= 0, f"max_episodes must be 0 (no limit) or more (got {self.max_episodes}).")
        _check(self.max_minutes >= 0, f"max_minutes must be 0 (no limit) or more (got {self.max_minutes}).")
        _check(1 <= self.eval_episodes <= 1000, f"eval_episodes must be between 1 and 1000 (got {self.eval_episodes}).")
        _check(self.device in ("auto", "cpu", "cuda", "mps"), f"device must be auto, cpu, cuda or mps (got {self.device!r}).")
        _check(0 <= self.torch_threads <= 256, f"torch_threads must be between 0 (torch's choice) and 256 (got {self.torch_threads}).")

    @property
    def rollout_size(self) -> int:
        """Transitions per update: n_steps x n_envs."""
        return self.n_steps * self.n_envs


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


AGENT_PRESETS: dict[str, Preset] = {
    "cartpole-5-minutes": Preset(
        title="Learn CartPole in 5 minutes",
        description="PPO on CartPole for 5 minutes: the default state text, whose words carry the decision (which "
                    "way the pole leans and falls), LoRA in the last 4 blocks, 16 environments per forward pass. "
                    "On a 2-core CPU the probability of pushing the right way climbs from the first minute and "
                    "the greedy return rises from about 9 to well above 75 (bench/bench_lm_agent.py measures it).",
        overrides=dict(env_id="CartPole-v1", algo="ppo", total_steps=100_000, max_minutes=5.0, eval_episodes=10),
    ),
}
"""The Agent page's one-click starting points (what they promise is measured by bench/bench_lm_agent.py --preset)."""

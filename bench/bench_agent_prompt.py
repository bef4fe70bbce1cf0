"""Does the agent's prompt invite copying? (issue 17, 1b) Mean p(left) of the untrained model on probe states.

For CartPole's probe states (text_env.make_probe_states: the pole leaning left or right by 1 to 10
degrees and falling that way), the untrained model's probability of the action word 'left', as
the policy computes it (TWOSOME scores over the action words, softmax), under four prompts:
  default        the shipped instruction ('push the cart left or right') and state text ('... Push the cart');
  words swapped  the instruction names the actions in the other order ('push the cart right or left');
  no ending      the state text without its trailing 'Push the cart';
  both           both changes.
A model that reads the state would give p(left) high when the pole leans left and low when it leans
right; one that copies gives about the same p(left) everywhere, moved by the word it saw first.
Printed per prompt: mean p(left) over the left-leaning probes, over the right-leaning ones, the gap
(left minus right; > 0 means the state pushes the right way), and p(toward the lean).

Run: python bench/bench_agent_prompt.py [--model bundled]   (loads the model once; about a minute on a CPU)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()

    import torch

    from llmrl_core.agent.policy import TextPolicy
    from llmrl_core.agent.text_env import get_adapter, make_probe_states, render_state
    from llmrl_core.lm.models import load_causal_lm

    adapter = get_adapter("CartPole-v1")
    ending = " Push the cart"
    assert adapter.state_template.endswith(ending)
    swapped = adapter.instruction.replace("left or right", "right or left")
    assert swapped != adapter.instruction
    prompts = {
        "default": (adapter.instruction, adapter.state_template),
        "words swapped": (swapped, adapter.state_template),
        "no ending": (adapter.instruction, adapter.state_template[: -len(ending)]),
        "both": (swapped, adapter.state_template[: -len(ending)]),
    }
    loaded = load_causal_lm(args.model, device="cpu")
    observations, toward = make_probe_states("CartPole-v1")
    leans_left = torch.tensor([t == 0 for t in toward])
    print(f"model {loaded.resolved.display_name} · {len(observations)} probe states · load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3]) if Path('/proc/loadavg').exists() else 'n/a'}")
    for name, (instruction, template) in prompts.items():
        policy = TextPolicy(loaded.model, loaded.tokenizer, instruction, adapter.action_words, "token", loaded.device)
        with torch.no_grad():
            probs = policy.forward_states(policy.encode_states([render_state(adapter, template, o) for o in observations]),
                                          use_cache=False).logp.exp()  # (P, 2)
        p_left = probs[:, 0]
        p_toward = probs[torch.arange(len(toward)), torch.tensor(toward)]
        print(f"{name:14s} mean p(left) {float(p_left.mean()):.3f} · leaning left {float(p_left[leans_left].mean()):.3f} · "
              f"leaning right {float(p_left[~leans_left].mean()):.3f} · gap {float(p_left[leans_left].mean() - p_left[~leans_left].mean()):+.3f} · "
              f"p(toward the lean) {float(p_toward.mean()):.3f}")


if __name__ == "__main__":
    main()

"""RL fine-tuning of a language model (job kind and page "lm_rl", CLI verb "train"): config,
trainer, the job, checkpoints, prompt sets, rewards/ and algorithms/ (one module per algorithm)."""

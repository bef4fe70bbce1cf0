"""Language models: load one from a single spec string (hub id, folder, .gguf, 'bundled', 'tiny'),
and generate in batches with per-token log-probs."""

"""Attention maps of a causal language model (page "attention", CLI verb "attention"): maps, cli."""

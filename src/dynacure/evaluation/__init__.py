"""Evaluation suites: what the trained model does (toxicity, perplexity, preference, bias...)."""

"""Evaluation suites: what the trained model does (toxicity, perplexity, preference, bias...)."""

from dynacure.evaluation.suites import SUITES, available_suites, get_suite, run_suites

__all__ = ["SUITES", "available_suites", "get_suite", "run_suites"]

"""Experiments: strategies x seeds x budgets x reward weights from one config, one table."""

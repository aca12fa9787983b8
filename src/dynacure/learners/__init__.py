"""Learners: the language models trained on curated data (a small GPT written here, and an HF adapter)."""

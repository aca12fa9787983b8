"""Audit: what curation removes from whom (identity groups, dialect), with disparity ratios and intervals."""

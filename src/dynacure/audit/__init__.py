"""Audit: what curation removes from whom (identity groups, dialect), with disparity ratios and intervals,
and a disparity cap that mitigates over-removal at the same token budget."""

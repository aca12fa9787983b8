"""The curation pipeline: small steps (read, score, select, transform, write) that ``dynacure curate``, the
experiment runner and the adaptivity study all run, so the text a model is trained on is made one way.

Each step is a short class with one main method and its own ``stats`` counter (``kept``,
``dropped:<reason>``, ``quarantined:<reason>``, ``rerouted``, ``redacted`` ...); per-shard work (scoring a
shard, transforming a shard's documents) is a plain module function an executor can map over shards.
Submodules are imported where used, so importing the package stays cheap.
"""

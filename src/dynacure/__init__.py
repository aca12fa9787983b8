"""dynacure: curate language-model training data with a learned (RL) selection policy.

Layers, one package each (see docs/ARCHITECTURE.md): io -> signals -> selectors -> loop; learners and
evaluation beside the loop; experiments and report on top; cli is the only face.
"""

__version__ = "0.1.0"

"""Sets and (anti)symmetric ansätze (SPEC §1): the shared ``"sets"`` datamodule with its
target registry, DeepSets, Relation Net, symmetric single-index, Slater and Jastrow models."""

from zoo.ansatz import figures, models, targets  # noqa: F401  (register targets, models, figures)

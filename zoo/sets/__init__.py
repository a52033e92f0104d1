"""Sets X: (B, N, D) shared by the ansatz and attention families: input samplers, the registry
of exact targets with their symmetries, and the ``sets`` datamodule.

A sample is a set of ``N`` points (``n_set``) in dimension ``D`` (``dim``) drawn by a
registered sampler; its label is the exact value of a registered target. Families add their
targets with :func:`register_target`.
"""

from zoo.sets.data import SetDataModule
from zoo.sets.samplers import SAMPLERS, list_samplers, register_sampler, sample_sets
from zoo.sets.targets import (
    SYMMETRIES,
    TARGETS,
    TargetSpec,
    evaluate_target,
    get_target,
    list_targets,
    register_target,
)

__all__ = [
    "SAMPLERS",
    "SYMMETRIES",
    "TARGETS",
    "SetDataModule",
    "TargetSpec",
    "evaluate_target",
    "get_target",
    "list_samplers",
    "list_targets",
    "register_sampler",
    "register_target",
    "sample_sets",
]

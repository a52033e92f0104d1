"""Sets and (anti)symmetric ansätze, after Zweig & Bruna's separation results for symmetric
networks (DeepSets vs Relation Nets), antisymmetric ansätze (Slater sums vs Jastrow–Slater,
and FermiNet's backflow beyond them) and symmetric single-index learning.

One architecture per module: :mod:`~zoo.ansatz.deepsets`, :mod:`~zoo.ansatz.relation_net`,
:mod:`~zoo.ansatz.single_index`, :mod:`~zoo.ansatz.slater` (with the reusable
:class:`SlaterDeterminants` part), :mod:`~zoo.ansatz.jastrow` (with the reusable
:class:`JastrowFactor`) and :mod:`~zoo.ansatz.backflow`; the family's base classes and loss
in :mod:`~zoo.ansatz.base`, the nn primitives in :mod:`~zoo.ansatz.blocks`, the exact targets
in :mod:`~zoo.ansatz.targets`.

Importing this package imports every module in it, which registers the models
``deepsets``, ``relation_net``, ``sym_single_index``, ``slater``, ``jastrow``, ``slater_l25``,
``jastrow_l25``, ``backflow``, their targets
in the shared ``"sets"`` datamodule of :mod:`zoo.sets`, and the family's figures.
"""

from zoo.ansatz.backflow import Backflow
from zoo.ansatz.base import SetRegressor, StandardizedSetRegressor
from zoo.ansatz.blocks import mlp, signed_logsumexp, zero_nonfinite_grads
from zoo.ansatz.deepsets import DeepSets
from zoo.ansatz.jastrow import Jastrow, JastrowFactor
from zoo.ansatz.relation_net import RelationNet
from zoo.ansatz.single_index import SymSingleIndex
from zoo.ansatz.slater import Slater, SlaterDeterminants
from zoo.core.registry import import_submodules

import_submodules(__name__)  # the rest (targets, figures) registers on import

__all__ = [
    "Backflow",
    "DeepSets",
    "Jastrow",
    "JastrowFactor",
    "RelationNet",
    "SetRegressor",
    "Slater",
    "SlaterDeterminants",
    "StandardizedSetRegressor",
    "SymSingleIndex",
    "mlp",
    "signed_logsumexp",
    "zero_nonfinite_grads",
]

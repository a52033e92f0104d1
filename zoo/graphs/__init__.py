"""SBM graphs and neural collapse of GNN features (Kothapalli, Tirer & Bruna, NeurIPS 2023).

Importing the package registers everything in it: the ``sbm`` datamodule, the models
``gnn_nc``, ``gcn_nc``, ``spectral_sbm`` and the ``gnn_nc_*`` figures. See docs/graphs.md.
"""

from zoo.core.registry import import_submodules

import_submodules(__name__)

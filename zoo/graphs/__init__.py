"""SBM graphs and neural collapse of GNN features (Kothapalli, Tirer & Bruna, NeurIPS 2023).

Importing the package registers everything in it: the ``sbm`` datamodule (ordinary and
regular SBM graphs), the models ``gnn_nc``, its variants ``gnn_nc_noself``, ``gnn_nc_paper``,
``gnn_nc_paper_noself``, ``gnn_nc_c4``, ``gcn_nc``, ``spectral_sbm``, and the ``gnn_nc_*`` and
``gufm_regular`` figures (the graph unconstrained-features model is in ``zoo.graphs.gufm``).
See docs/graphs.md.
"""

from zoo.core.registry import import_submodules

import_submodules(__name__)

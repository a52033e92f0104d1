"""SBM graphs and GNN neural collapse (SPEC §3)."""

from zoo.graphs import (
    data,  # noqa: F401  (registers the "sbm" datamodule)
    models,  # noqa: F401  (registers gnn_nc, gcn_nc)
    spectral,  # noqa: F401  (registers "spectral_sbm"; NC part B)
)

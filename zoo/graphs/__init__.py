"""SBM graphs and GNN neural collapse (SPEC §3)."""

from zoo.graphs import (
    data,  # noqa: F401  (registers the "sbm" datamodule)
    figures,  # noqa: F401  (registers the gnn_nc_* figures)
    models,  # noqa: F401  (registers gnn_nc, gcn_nc)
    spectral,  # noqa: F401  (registers "spectral_sbm")
)

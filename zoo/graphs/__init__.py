"""SBM graphs and GNN neural collapse (SPEC §3)."""

from zoo.graphs import data  # noqa: F401  (registers the "sbm" datamodule)

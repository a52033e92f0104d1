"""SBM graphs and GNN neural collapse (SPEC §3)."""

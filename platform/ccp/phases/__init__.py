"""One module per phase. Their order is defined in ccp.workflows, and only there; ccp.workflows is also
the only importer of a phase. What several phases need lives below them (ccp.cluster and further down):
a phase never imports another phase (tests/unit/test_import_graph.py)."""

"""One module per phase. Their order is defined in ccp.workflows, and only there."""

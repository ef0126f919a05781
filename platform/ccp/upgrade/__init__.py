"""ccp upgrade: one minor (or patch) at a time, backup first, control planes one by one, workers
in PDB-aware batches, journaled node by node so a stopped upgrade resumes."""

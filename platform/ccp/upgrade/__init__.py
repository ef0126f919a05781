"""ccp upgrade: one minor (or patch) at a time, backup first, control planes one by one, workers
in PDB-aware batches, journaled node by node so a stopped upgrade resumes.

plan.py orders the steps, skew.py says which targets are allowed, flow.py checks the inputs, runs the
preflight and writes cluster.yaml's version at the end, nodes.py upgrades the nodes of one step. Each
step is a phase (phases/upgrade.py) in workflows.upgrade, run by the engine like the install."""

"""Suites on real local machines (systemd-nspawn). TIMES: what the cluster suite measured, for the run's summary."""

TIMES: dict[str, float] = {}

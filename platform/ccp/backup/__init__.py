"""Backups: etcd snapshots and the PKI taken from here (snapshot), kept N deep, on a schedule on the
control planes (schedule), and restored onto the control planes (restore)."""

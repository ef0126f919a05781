"""ccp diagnose: findings (what is wrong, the evidence, what to do) over vSphere, the hosts, Kubernetes,
the add-ons and certificates, and a redacted support bundle."""

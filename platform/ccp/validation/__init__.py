"""`ccp validate`: prove a cluster works — storage that survives a pod moving to another node, the
API endpoint, DNS and NetworkPolicy, metrics and logs arriving. Each check creates what it needs in a
fresh namespace and cleanup always runs."""

"""etcd on a kubeadm control plane, reached over SSH: etcdctl and etcdutl run inside etcd's own
container (the node need not have them installed) with kubeadm's health-check client certificate.
The backup, the scheduled backup script (rendered) and node removal all build their commands from these."""

ETCD = ("crictl exec \"$(crictl ps --name '^etcd$' -q | head -n1)\"")
CERTS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
         "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key")

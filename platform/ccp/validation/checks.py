"""The six checks. Each returns a one-line detail (and measurements) or raises CheckFailed / Skip."""

from __future__ import annotations

import json
import urllib.parse

from ccp.validation.base import CheckFailed, Ctx, Skip, pod

REQUIRED_JOBS = ("apiserver", "kubelet", "node-exporter", "kube-state-metrics")


def pvc_persistence(c: Ctx) -> tuple[str, dict]:
    """Write a token to a fresh volume, delete the pod, read it back from a new pod — on another node
    when there is one (the vSphere CSI detach/re-attach case)."""
    sc = c.opts.storage_class or c.port.default_storage_class()
    if not sc:
        raise CheckFailed("no StorageClass given and the cluster has no default one")
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": sc,
                      "resources": {"requests": {"storage": c.opts.pvc_size}}}}
    volume = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    mount = [{"name": "data", "mountPath": "/data"}]
    t0 = c.clock()
    c.create(claim)
    write = ('set -e; printf %s "$TOKEN" > /data/token; sha256sum /data/token | cut -d" " -f1 > /data/token.sha256; '
             'sync; echo "WROTE $TOKEN $(cat /data/token.sha256)"')
    c.create(pod("writer", write, c.opts.image, env={"TOKEN": c.token}, volumes=volume, mounts=mount))
    running = c.wait_pod("writer", ("Running", "Succeeded"), what="the writer pod (volume bind and first attach)")
    first_attach = c.clock() - t0
    bound = c.port.pvc_phase(c.namespace, "data") == "Bound"
    done = c.wait_pod("writer", ("Succeeded",), what="the writer pod")
    wrote = _line(c.port.logs(c.namespace, "writer"), "WROTE")
    if wrote[:1] != [c.token]:
        raise CheckFailed(f"the writer did not report the token it wrote: {' '.join(wrote) or 'no output'}")
    writer_node = done.node or running.node
    c.port.remove("Pod", c.namespace, "writer")
    c.wait_gone("writer")

    others = [n for n in c.port.schedulable_nodes() if n != writer_node]
    node_local = c.port.volume_is_node_local(c.namespace, "data")
    cross = c.opts.cross_node and bool(others) and not node_local
    affinity = None
    if cross:
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [writer_node]}]}]}}}
    read = 'echo "READ $(cat /data/token) $(sha256sum /data/token | cut -d" " -f1) $(cat /data/token.sha256)"'
    t1 = c.clock()
    c.create(pod("reader", read, c.opts.image, volumes=volume, mounts=mount, affinity=affinity))
    rd = c.wait_pod("reader", ("Succeeded",), what="the reader pod (re-attach)")
    reattach = c.clock() - t1
    got = _line(c.port.logs(c.namespace, "reader"), "READ")
    if len(got) != 3 or got[0] != c.token or got[1] != got[2] or got[1] != wrote[1]:
        raise CheckFailed(f"the data read back differs: wrote {c.token} ({wrote[1] if len(wrote) > 1 else '?'}), "
                          f"read {' '.join(got) or 'nothing'}")
    where = f"from {writer_node} to {rd.node}" if cross else "on the same node"
    note = ("" if cross or not c.opts.cross_node else
            " (cross-node part skipped: the volume is node-local, it cannot follow a pod to another node)" if node_local else
            " (cross-node part skipped: only one schedulable node)")
    m = {"storageClass": sc, "bound": bound, "firstAttachSeconds": round(first_attach, 1),
         "reattachSeconds": round(reattach, 1), "crossNode": cross, "nodeLocal": node_local}
    return f"{sc}: data survived the pod moving {where}; first attach {first_attach:.1f}s, re-attach {reattach:.1f}s{note}", m


def api_endpoint(c: Ctx) -> tuple[str, dict]:
    ok, detail = c.port.readyz()
    if not ok:
        raise CheckFailed(f"/readyz through the kubeconfig's server failed: {detail}")
    bad, good = [], ["kubeconfig server"]
    # An API server that has just (re)started answers 403/500 on /readyz until it is ready (seen on real
    # nodes right after a stopped control plane came back): each endpoint gets a bounded minute.
    deadline = c.clock() + min(60.0, c.opts.timeout)
    for server in c.opts.endpoints:
        ok, detail = c.port.readyz(server)
        while not ok and c.clock() < deadline:
            c.sleep(2)
            ok, detail = c.port.readyz(server)
        (good if ok else bad).append(server if ok else f"{server}: {detail}")
    if bad:
        raise CheckFailed(f"/readyz failed on {len(bad)} endpoint(s): {'; '.join(bad)}")
    return f"/readyz answered through {len(good)} endpoint(s)", {"endpoints": good}


NO_DNS_IN_CONFIG = "no cluster DNS: kubeadm's addon/coredns phase is skipped in cluster.yaml"


def dns(c: Ctx) -> tuple[str, dict]:
    """A pod resolves kubernetes.default.svc.<domain> to the kubernetes Service's ClusterIP. The real
    cluster decides whether there is a cluster DNS to test; with none the check is skipped, saying why."""
    svc = c.port.service("kube-system", "kube-dns")
    if svc is None or svc.backends == 0:
        if c.opts.coredns_skipped:
            raise Skip(NO_DNS_IN_CONFIG)
        raise Skip("no kube-dns Service in kube-system" if svc is None else
                   "no cluster DNS: no pods behind the kube-dns Service in kube-system")
    deadline = c.clock() + c.opts.timeout
    while not svc.ready:   # pods exist but none is ready: a broken DNS, not an absent one
        if c.clock() >= deadline:
            raise CheckFailed(f"the kube-dns Service in kube-system has {svc.backends} pod(s), none ready "
                              f"within {c.opts.timeout:.0f}s")
        c.sleep(5)
        svc = c.port.service("kube-system", "kube-dns") or svc
    fqdn = f"kubernetes.default.svc.{c.opts.dns_domain}"
    api = c.port.service("default", "kubernetes")
    probe = (f'for i in 1 2 3 4 5; do if out=$(nslookup {fqdn} 2>&1); then echo "$out"; echo DNS-OK; exit 0; fi; '
             'sleep 2; done; echo "$out"; echo DNS-FAILED')
    c.create(pod("dns-client", probe, c.opts.image))
    c.wait_pod("dns-client", ("Succeeded",), what="the DNS client pod")
    out = c.port.logs(c.namespace, "dns-client")
    where = f"the cluster DNS ({svc.cluster_ip}, {svc.ready} ready pod(s))"
    if "DNS-OK" not in out.split():
        said = [ln.strip() for ln in out.splitlines() if ln.strip() and ln.strip() != "DNS-FAILED"]
        raise CheckFailed(f"a pod could not resolve {fqdn} through {where}: {said[-1] if said else 'no output'}")
    got = _answers(out)
    if api and api.cluster_ip and api.cluster_ip not in got:
        raise CheckFailed(f"{fqdn} resolved to {', '.join(got) or 'nothing'}, not the kubernetes Service's ClusterIP {api.cluster_ip}")
    return f"a pod resolved {fqdn} to {', '.join(got)} through {where}", {"server": svc.cluster_ip, "answers": got}


def _answers(nslookup: str) -> list[str]:
    """The addresses after the Name: line (busybox prints `Address: IP` or `Address 1: IP name`)."""
    out, named = [], False
    for line in nslookup.splitlines():
        named = named or line.startswith("Name:")
        if named and line.startswith("Address") and ":" in line:
            words = line.split(":", 1)[1].split()
            out += words[:1]
    return out


def service_and_policy(c: Ctx) -> tuple[str, dict]:
    """A pod reaches another pod directly and through its Service's ClusterIP, read from the Service —
    no DNS name anywhere; then a deny-all NetworkPolicy blocks it, unless the CNI is known not to enforce policy."""
    serve = "mkdir -p /www && echo ccp-ok > /www/index.html && httpd -f -p 8080 -h /www"
    c.create(pod("net-server", serve, c.opts.image, labels={"app": "net-server"}))
    c.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "net-server"},
              "spec": {"selector": {"app": "net-server"}, "ports": [{"port": 8080, "targetPort": 8080}]}})
    server = c.wait_pod("net-server", ("Running",), what="the test server pod")
    svc = c.port.service(c.namespace, "net-server")
    cip = svc.cluster_ip if svc else ""
    if cip in ("", "None"):
        raise CheckFailed("the test Service net-server got no ClusterIP")
    # `timeout` rather than wget's -T: Debian's static busybox (the images made here) crashes on -T.
    # Up to a minute: a kube-proxy whose watch went through a load balancer that failed over learns of the new
    # Service only when its idle HTTP/2 connection is found dead (~45 s, seen on real nodes); a working one answers at once.
    fetch = ('get() { for i in $(seq 12); do if r=$(timeout 3 wget -qO- "$2" 2>&1); then echo "$1 $r"; return; fi; '
             'sleep 2; done; echo "$1 failed: $(echo "$r" | tail -n 1)"; }; ')
    direct = f'get POD {_url(server.ip)}; ' if server.ip else ""
    c.create(pod("net-client", fetch + direct + f"get SERVICE {_url(cip)}", c.opts.image))
    c.wait_pod("net-client", ("Succeeded",), what="the test client pod")
    said = c.port.logs(c.namespace, "net-client").splitlines()
    m = {"clusterIP": cip, "podIP": server.ip}
    if "SERVICE ccp-ok" not in said:
        why = next((ln.split(":", 1)[1].strip() for ln in said if ln.startswith("SERVICE failed:")), "")
        why = f": {why}" if why else ""
        if server.ip and "POD ccp-ok" not in said:
            raise CheckFailed(f"a pod could not reach another pod at {server.ip}:8080, directly or through its Service "
                              f"(the pod network){why}")
        raise CheckFailed(f"a pod {'reached the server pod at ' + server.ip + ':8080 but ' if server.ip else ''}could not "
                          f"reach it through its Service's ClusterIP {cip}:8080 (Service routing: kube-proxy or the CNI's "
                          f"replacement){why}")
    if c.opts.cni_enforces_policy is False:
        return (f"a pod reached a Service by its ClusterIP {cip}; NetworkPolicy not tested (the CNI does not enforce it)",
                {**m, "policy": "skipped"})
    c.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
              "spec": {"podSelector": {"matchLabels": {"app": "net-server"}}, "policyTypes": ["Ingress"]}})
    # the CNI programs the policy a moment later: blocked on any attempt within ~15 s counts
    blocked = (f'sleep 3; for i in 1 2 3 4 5 6; do if ! timeout 3 wget -qO- {_url(cip)} >/dev/null 2>&1; then echo BLOCKED; exit 0; fi; '
               'sleep 2; done; echo REACHED')
    c.create(pod("net-denied", blocked, c.opts.image))
    c.wait_pod("net-denied", ("Succeeded",), what="the NetworkPolicy probe pod")
    if "BLOCKED" not in c.port.logs(c.namespace, "net-denied"):
        raise CheckFailed("a deny-all NetworkPolicy did not block traffic: the CNI does not enforce NetworkPolicy")
    return f"a pod reached a Service by its ClusterIP {cip}; a deny-all NetworkPolicy blocks it", {**m, "policy": "enforced"}


def _url(ip: str) -> str:
    return f"http://[{ip}]:8080/" if ":" in ip else f"http://{ip}:8080/"


def metrics(c: Ctx) -> tuple[str, dict]:
    if c.opts.monitoring is False:
        raise Skip("monitoring is disabled in cluster.yaml")
    if not c.port.service_exists("monitoring", "prometheus"):
        raise Skip("no Prometheus (monitoring/prometheus) in this cluster")
    deadline = c.clock() + c.opts.timeout
    while True:
        down = _down_jobs(c.port.proxy_get("monitoring", "prometheus", 9090, "/api/v1/query?query=up"))
        if not down:
            return f"up == 1 for {', '.join(REQUIRED_JOBS)}", {}
        if c.clock() >= deadline:
            raise CheckFailed(f"Prometheus does not see every target up: {'; '.join(down)}")
        c.sleep(5)


def _down_jobs(body: str) -> list[str]:
    try:
        series = json.loads(body)["data"]["result"]
    except (ValueError, KeyError, TypeError):
        return [f"Prometheus answered something else: {body[:120]}"]
    problems = []
    for job in REQUIRED_JOBS:
        mine = [s for s in series if s.get("metric", {}).get("job") == job]
        if not mine:
            problems.append(f"{job}: no targets")
        elif any(s["value"][1] != "1" for s in mine):
            problems.append(f"{job}: {sum(s['value'][1] != '1' for s in mine)} of {len(mine)} down")
    return problems


def logs(c: Ctx) -> tuple[str, dict]:
    if c.opts.logging is False:
        raise Skip("logging is disabled in cluster.yaml")
    if not c.port.service_exists("logging", "elasticsearch"):
        raise Skip("no Elasticsearch (logging/elasticsearch) in this cluster")
    line = f"ccp-validate-log-{c.token}"
    c.create(pod("logger", f'echo "{line}"; sleep 3600', c.opts.image))
    c.wait_pod("logger", ("Running",), what="the logging pod")
    q = urllib.parse.quote(f'"{line}"')
    seconds = int(c.opts.timeout)
    query = (f'end=$(( $(date +%s) + {seconds} )); while [ "$(date +%s)" -lt "$end" ]; do '
             f'n=$(curl -s --cacert /certs/ca.crt -u "elastic:$PW" "https://elasticsearch:9200/ccp-logs-*/_count?q={q}" '
             "| sed -n 's/.*\"count\":\\([0-9]*\\).*/\\1/p'); "
             'if [ -n "$n" ] && [ "$n" -gt 0 ]; then echo FOUND; exit 0; fi; sleep 5; done; echo NOTFOUND')
    name = f"ccp-validate-query-{c.token[:8]}"
    spec = pod(name, query, c.opts.query_image, namespace="logging", secret_env={"PW": ("elastic-credentials", "elastic-password")},
               volumes=[{"name": "certs", "secret": {"secretName": "elasticsearch-certs", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
               mounts=[{"name": "certs", "mountPath": "/certs"}])
    t0 = c.clock()
    c.create(spec)
    c.wait_pod(name, ("Succeeded",), namespace="logging", what="the Elasticsearch query pod")
    if "FOUND" not in c.port.logs("logging", name).split():
        raise CheckFailed(f"the line {line!r} did not reach Elasticsearch within {seconds}s (Filebeat -> Logstash -> Elasticsearch)")
    return f"a pod's log line was indexed in Elasticsearch after {c.clock() - t0:.0f}s", {}


def _line(text: str, tag: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return line.split()[1:]
    return []


CHECKS = {"pvc-persistence": pvc_persistence, "api-endpoint": api_endpoint, "dns": dns,
          "service-and-policy": service_and_policy, "metrics": metrics, "logs": logs}

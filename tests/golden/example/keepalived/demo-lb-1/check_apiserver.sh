#!/bin/sh
# Rendered by ccp 0.1.0 for demo-lb-1 of cluster demo.
# keepalived's health check: exit 0 while this node can serve the Kubernetes API.
# Load balancer: NGINX must be running and accepting on the API port.
pidof nginx >/dev/null 2>&1 || exit 1
timeout 2 bash -c '</dev/tcp/127.0.0.1/6443' >/dev/null 2>&1 || exit 1
exit 0

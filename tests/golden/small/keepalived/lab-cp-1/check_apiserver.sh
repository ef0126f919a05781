#!/bin/sh
# Rendered by ccp 0.1.0 for lab-cp-1 of cluster lab.
# keepalived's health check: exit 0 while this node can serve the Kubernetes API.
# Control plane without load balancers: the local API server must answer.
curl --silent --insecure --max-time 2 --output /dev/null https://127.0.0.1:6443/livez || exit 1
exit 0

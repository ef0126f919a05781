# Two commands cover everything (see README.md):
#   make demo   set up, then build a real HA cluster on local machines (root; ~4 GiB free memory)
#   make test   set up and run the test suite
SHELL := /bin/bash
VENV := .venv
CCP := $(VENV)/bin/ccp
export TF_CLI_CONFIG_FILE ?= /dev/null
export VSPHERE_PASSWORD ?= vcsim-any-password
GOVC := .tools/bin/govc
# govc reads its credentials from the environment, so no command line shows the password
export GOVC_URL ?= https://127.0.0.1:8989/sdk
export GOVC_USERNAME ?= user
export GOVC_PASSWORD ?= $(VSPHERE_PASSWORD)
export GOVC_INSECURE ?= 1

.PHONY: setup demo demo-clean demo-vcsim test bench vcsim-start vcsim-stop lab-bundle clean

setup:
	@hack/setup.sh

vcsim-start: setup
	@hack/vcsim.sh start

vcsim-stop:
	@hack/vcsim.sh stop

# The offline bundle examples/local.yaml installs from (.tools/lab-bundle.tar), made from ../shared/k8s
lab-bundle: setup
	@hack/lab-bundle.sh

# The main job for real: examples/local.yaml (2 load balancers, 3 control planes, 2 workers as
# systemd-nspawn machines) installed by ccp from the lab bundle (from upstream packages and images,
# examples/local-upstream.yaml, where ../shared/k8s is missing); it keeps running until demo-clean.
demo: setup
	@hack/demo-local.sh

demo-clean: setup
	$(CCP) destroy --config $$(if [ -f .tools/local-upstream.yaml ] && [ ! -x $${CCP_SHARED_K8S:-../shared/k8s}/lab ]; \
	  then echo .tools/local-upstream.yaml; else echo examples/local.yaml; fi) --yes

# The vSphere path against the simulator: create the cluster's VMs, show them, remove them again.
# CCP_VCSIM_SHIM=1 lets vcsim report guest IPs (it runs no guest; see platform/ccp/providers/vcsim_shim.py).
demo-vcsim: vcsim-start
	@$(GOVC) folder.create /DC0/vm/ccp-vcsim >/dev/null 2>&1 || true
	$(CCP) config validate --config examples/vcsim.yaml
	$(CCP) plan --config examples/vcsim.yaml
	CCP_VCSIM_SHIM=1 $(CCP) install --config examples/vcsim.yaml --until provision --yes
	$(GOVC) ls -l '/DC0/vm/ccp-vcsim/*'
	$(CCP) phases --config examples/vcsim.yaml
	$(CCP) destroy --config examples/vcsim.yaml --yes
	@echo "demo done; vcsim is still running on 127.0.0.1:8989 for your own tries — stop it with: make vcsim-stop"

test: setup
	@rc=0; $(VENV)/bin/python -m pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the test suite is missing" >&2; fi; exit $$rc

bench: setup
	$(VENV)/bin/python bench/cli_startup.py
	$(VENV)/bin/python bench/render_scale.py
	$(VENV)/bin/python bench/provision.py
	$(VENV)/bin/python bench/diagnose.py
	$(VENV)/bin/python bench/upgrade_plan.py
	$(VENV)/bin/python bench/install_local.py
	$(VENV)/bin/python bench/day2_local.py

clean:
	rm -rf .ccp .pytest_cache .hypothesis

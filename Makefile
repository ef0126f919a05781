# Two commands cover everything (see README.md):
#   make demo   set up, start the vSphere simulator and run ccp against it
#   make test   set up and run the test suite
SHELL := /bin/bash
VENV := .venv
CCP := $(VENV)/bin/ccp
export TF_CLI_CONFIG_FILE ?= /dev/null
export VSPHERE_PASSWORD ?= vcsim-any-password

.PHONY: setup demo test bench vcsim-start vcsim-stop clean

setup:
	@hack/setup.sh

vcsim-start: setup
	@hack/vcsim.sh start

vcsim-stop:
	@hack/vcsim.sh stop

demo: vcsim-start
	$(CCP) config validate --config examples/vcsim.yaml
	$(CCP) plan --config examples/vcsim.yaml
	$(CCP) install --config examples/vcsim.yaml --yes
	$(CCP) phases --config examples/vcsim.yaml

test: setup
	@rc=0; $(VENV)/bin/python -m pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the test suite is missing" >&2; fi; exit $$rc

bench: setup
	$(VENV)/bin/python bench/cli_startup.py
	$(VENV)/bin/python bench/render_scale.py

clean:
	rm -rf .ccp .pytest_cache .hypothesis

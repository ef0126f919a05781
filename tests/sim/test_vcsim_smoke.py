"""The simulator the later vSphere tests stand on answers like vCenter, and the vcsim example works
against it as far as the existing phases go."""

from __future__ import annotations

import ssl
import urllib.request

import pytest
import yaml

from tests.conftest import EXAMPLES, run_ccp

pytestmark = pytest.mark.sim

SERVICE_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:vim25="urn:vim25">
<soapenv:Body><vim25:RetrieveServiceContent><vim25:_this type="ServiceInstance">ServiceInstance</vim25:_this>
</vim25:RetrieveServiceContent></soapenv:Body></soapenv:Envelope>"""


def test_vcsim_answers_as_vcenter(vcsim):
    req = urllib.request.Request(vcsim.url, data=SERVICE_CONTENT.encode(),
                                 headers={"Content-Type": "text/xml", "SOAPAction": "urn:vim25/8.0.3.0"})
    body = urllib.request.urlopen(req, context=ssl._create_unverified_context(), timeout=10).read().decode()
    assert "<apiVersion>8.0.3.0</apiVersion>" in body
    assert "VirtualCenter" in body


def test_vcsim_example_plans_and_installs_through_render(vcsim, tmp_path):
    data = yaml.safe_load((EXAMPLES / "vcsim.yaml").read_text())
    data["spec"]["vsphere"]["server"] = vcsim.server
    data["spec"]["ssh"]["privateKeyFile"] = "~/.ssh/id_ed25519"
    cfg = tmp_path / "vcsim.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert run_ccp("plan", "--config", cfg).code == 0
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "render")
    assert r.code == 0, r.text
    assert (tmp_path / ".ccp" / "vcsim" / "rendered" / "terraform" / "terraform.tfvars.json").exists()

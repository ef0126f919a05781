"""cluster.yaml: the contract example loads; each mistake is reported at file:line:col with a fix."""

from __future__ import annotations

import re

import pytest

from ccp.config.load import load
from ccp.errors import ConfigError
from tests.conftest import EXAMPLES, example_data, write_config

LOC = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:]+): (?P<msg>.+)$")


def errors_of(path) -> list[dict]:
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.code == 2
    assert info.value.resolution
    out = []
    for detail in info.value.details:
        first = detail.splitlines()[0]
        m = LOC.match(first)
        assert m, f"not file:line:col: {first!r}"
        out.append({**m.groupdict(), "line": int(m["line"]), "col": int(m["col"]), "full": detail})
    return out


def mutated(tmp_path, edit) -> list[dict]:
    data = example_data()
    edit(data["spec"])
    return errors_of(write_config(tmp_path / "c.yaml", data))


def test_contract_example_loads_as_is():
    loaded = load(EXAMPLES / "cluster.yaml")
    cfg = loaded.config
    assert cfg.metadata.name == "demo"
    assert cfg.spec.kubernetes.version == "1.37.1"
    assert cfg.spec.vsphere.password.reveal() == "vc-Pa55word-for-tests"
    assert "vc-Pa55word" not in repr(cfg)
    assert cfg.spec.nodes.workers[0].memoryMiB == 16384
    assert cfg.spec.provisioner == "terraform"


def test_vcsim_example_loads():
    cfg = load(EXAMPLES / "vcsim.yaml").config
    assert cfg.spec.vsphere.port == 8989 and cfg.spec.vsphere.host == "127.0.0.1"


def test_unknown_key_points_at_the_key_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((EXAMPLES / "cluster.yaml").read_text().replace("    template: ubuntu", "    tempalte: ubuntu"))
    errs = errors_of(p)
    unknown = next(e for e in errs if "unknown field" in e["msg"])
    assert unknown["path"] == "spec.vsphere.tempalte"
    assert (unknown["line"], unknown["col"]) == (23, 5)
    assert "did you mean 'template'" in unknown["full"]
    missing = next(e for e in errs if "required field" in e["msg"])
    assert missing["path"] == "spec.vsphere.template"


def test_wrong_type_points_at_the_value(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((EXAMPLES / "cluster.yaml").read_text().replace("count: 3, cpus: 4, memoryMiB: 8192", "count: 3, cpus: four, memoryMiB: 8192"))
    (err,) = errors_of(p)
    assert err["path"] == "spec.nodes.controlPlane.cpus"
    assert err["line"] == 32 and err["col"] > 20
    assert "whole number" in err["full"]


@pytest.mark.parametrize("count", [0, 2, 4])
def test_control_plane_count_must_be_odd(tmp_path, count):
    (err,) = mutated(tmp_path, lambda s: s["nodes"]["controlPlane"].update(count=count))
    assert err["path"] == "spec.nodes.controlPlane.count" and "quorum" in err["msg"]


@pytest.mark.parametrize("field,value,other", [
    ("podCIDR", "10.96.0.0/16", "serviceCIDR"),
    ("podCIDR", "10.10.0.0/16", "node network"),
    ("serviceCIDR", "10.10.0.0/20", "node network"),
])
def test_overlapping_networks(tmp_path, field, value, other):
    errs = mutated(tmp_path, lambda s: s["kubernetes"].update({field: value}))
    assert any("overlaps" in e["msg"] for e in errs), errs


@pytest.mark.parametrize("where,value,words", [
    ("vip", "10.99.0.10", "outside the node network"),
    ("vip", "10.10.0.30", "inside the node address range"),
    ("gateway", "10.99.0.1", "outside the node network"),
    ("gateway", "10.10.0.25", "inside the node address range"),
])
def test_vip_and_gateway_placement(tmp_path, where, value, words):
    def edit(s):
        if where == "vip":
            s["loadBalancer"]["vip"] = value
        else:
            s["nodes"]["network"]["gateway"] = value
    (err,) = mutated(tmp_path, edit)
    assert words in err["msg"]
    assert err["path"] == ("spec.loadBalancer.vip" if where == "vip" else "spec.nodes.network.gateway")


def test_address_range_too_small_counts_every_node(tmp_path):
    (err,) = mutated(tmp_path, lambda s: s["nodes"]["network"].update(addresses="10.10.0.20-10.10.0.26"))
    assert "holds 7 addresses but the cluster needs 8" in err["msg"]
    assert "3 control plane + 3 worker + 2 load balancer" in err["msg"]


def test_unsupported_version_lists_supported(tmp_path):
    (err,) = mutated(tmp_path, lambda s: s["kubernetes"].update(version="1.33.4"))
    assert "not supported" in err["msg"]
    assert "1.37, 1.36, 1.35" in err["full"]


def test_unquoted_version_is_explained(tmp_path):
    (err,) = mutated(tmp_path, lambda s: s["kubernetes"].update(version=1.36))
    assert "quote" in err["full"]


def test_duplicate_worker_pools(tmp_path):
    def edit(s):
        s["nodes"]["workers"].append(dict(s["nodes"]["workers"][0]))
        s["nodes"]["network"]["addresses"] = "10.10.0.20-10.10.0.90"
    (err,) = mutated(tmp_path, edit)
    assert err["path"] == "spec.nodes.workers[1].name" and "used twice" in err["msg"]


def test_missing_env_var_for_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("VSPHERE_PASSWORD")
    (err,) = errors_of(write_config(tmp_path / "c.yaml", example_data()))
    assert err["path"] == "spec.vsphere.password"
    assert "VSPHERE_PASSWORD is not set" in err["msg"] and "export VSPHERE_PASSWORD" in err["full"]


def test_secret_from_file_relative_to_config(tmp_path):
    (tmp_path / "pw").write_text("from-a-file-secret\n")
    data = example_data()
    data["spec"]["vsphere"]["password"] = {"fromFile": "pw"}
    cfg = load(write_config(tmp_path / "c.yaml", data)).config
    assert cfg.spec.vsphere.password.reveal() == "from-a-file-secret"
    data["spec"]["vsphere"]["password"] = {"fromFile": "nope"}
    (err,) = errors_of(write_config(tmp_path / "c.yaml", data))
    assert "does not exist" in err["msg"]


def test_secret_shape_is_checked(tmp_path):
    data = example_data()
    data["spec"]["vsphere"]["password"] = {"fromVault": "x"}
    (err,) = errors_of(write_config(tmp_path / "c.yaml", data))
    assert err["path"] == "spec.vsphere.password" and "fromEnv" in err["msg"]


def test_literal_password_is_accepted_with_a_warning(tmp_path):
    data = example_data()
    data["spec"]["vsphere"]["password"] = "literal-secret-value"
    loaded = load(write_config(tmp_path / "c.yaml", data))
    assert any("literal secret" in w for w in loaded.warnings)
    assert all("literal-secret-value" not in w for w in loaded.warnings)


def test_all_errors_reported_together(tmp_path):
    def edit(s):
        s["nodes"]["controlPlane"]["count"] = 2
        s["loadBalancer"]["vip"] = "10.99.0.1"
        s["kubernetes"]["version"] = "1.30.0"
    assert len(mutated(tmp_path, edit)) == 3


def test_yaml_syntax_error_has_position(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("apiVersion: ccp.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: [demo\n")
    with pytest.raises(ConfigError) as info:
        load(p)
    assert re.match(rf"^{re.escape(str(p))}:\d+:\d+: ", info.value.details[0])


def test_duplicate_keys_are_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((EXAMPLES / "cluster.yaml").read_text().replace("  name: demo ", "  name: other\n  name: demo "))
    with pytest.raises(ConfigError) as info:
        load(p)
    assert ":8:" in info.value.details[0]


def test_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert "ccp config init" in info.value.resolution


def test_host_bits_and_range_order(tmp_path):
    errs = mutated(tmp_path, lambda s: s["nodes"]["network"].update(cidr="10.10.0.5/24"))
    assert any("host bits" in e["msg"] and "10.10.0.0/24" in e["full"] for e in errs)
    errs = mutated(tmp_path, lambda s: s["nodes"]["network"].update(addresses="10.10.0.60-10.10.0.20"))
    assert any("ends before it starts" in e["msg"] for e in errs)


def test_thumbprint_format(tmp_path):
    (err,) = mutated(tmp_path, lambda s: s["vsphere"].update(thumbprint="AB:CD"))
    assert err["path"] == "spec.vsphere.thumbprint" and "openssl" in err["full"]
    data = example_data()
    data["spec"]["vsphere"]["thumbprint"] = ":".join(["AB"] * 32)
    assert load(write_config(tmp_path / "ok.yaml", data)).config.spec.vsphere.thumbprint

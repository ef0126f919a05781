"""hack/lab_debs.py: the kubeadm/kubelet/kubectl packages `make lab-bundle` builds from the lab's
binaries, checked with dpkg-deb on packages built from tiny fake binaries (shell scripts that report
a version the way the real ones do)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

if shutil.which("dpkg-deb") is None:
    pytest.skip("dpkg-deb is not installed (Debian's dpkg)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_debs", ROOT / "hack" / "lab_debs.py")
lab_debs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_debs)

COMMIT = "fea8a54f480ae6de3f37f4e6738e4e29f2ebaccc"
BUILD_DATE = "2026-12-02T12:35:23Z"
# kubelet --version=raw prints Go's %#v of version.Info; kubeadm and kubectl print JSON with -o json
GO_STYLE = f'version.Info{{Major:"1", Minor:"35", GitVersion:"{{v}}", GitCommit:"{COMMIT}", BuildDate:"{BUILD_DATE}"}}'
JSON_STYLE = f'{{"clientVersion": {{"gitVersion": "{{v}}", "gitCommit": "{COMMIT}", "buildDate": "{BUILD_DATE}"}}}}'


def fake_binary(directory: Path, name: str, version: str = "v1.35.0-alpha.0", extra: str = "") -> Path:
    text = (GO_STYLE if name == "kubelet" else JSON_STYLE).replace("{v}", version)
    path = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n# {extra}\ncat <<'EOF'\n{text}\nEOF\n")
    path.chmod(0o755)
    return path


def info(deb: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields, key = {}, None
    for line in out.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def contents(deb: Path) -> list[list[str]]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True,
                         env={**os.environ, "TZ": "UTC"}).stdout   # it prints mtimes in local time
    return [line.split() for line in out.splitlines()]


@pytest.fixture(autouse=True)
def _no_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.mark.parametrize(("reported", "debian"), [
    ("v1.35.0-alpha.0", "1.35.0~alpha.0-1"),
    ("v1.35.0-lab.1", "1.35.0~lab.1-1"),
    ("v1.36.2", "1.36.2-1"),
    ("1.34.0-rc.1", "1.34.0~rc.1-1"),
])
def test_debian_version(reported, debian):
    assert lab_debs.debian_version(reported) == debian


def test_debian_versions_sort_like_kubernetes():
    ordered = ["1.35.0~alpha.0-1", "1.35.0~lab.1-1", "1.35.0-1", "1.35.1-1"]
    for low, high in zip(ordered, ordered[1:]):
        assert subprocess.run(["dpkg", "--compare-versions", low, "lt", high]).returncode == 0, (low, high)


def test_debian_version_refuses_what_is_not_a_version():
    with pytest.raises(ValueError):
        lab_debs.debian_version("Kubernetes v1.35")


def test_kubelet_package(tmp_path):
    deb = lab_debs.build("kubelet", fake_binary(tmp_path / "bin", "kubelet"), tmp_path / "out")
    assert deb.name == "kubelet_1.35.0~alpha.0-1_amd64.deb"
    f = info(deb)
    assert (f["Package"], f["Version"], f["Architecture"]) == ("kubelet", "1.35.0~alpha.0-1", "amd64")
    assert f["Maintainer"] == "ccp lab build <none>"
    depends = [d.strip() for d in f["Depends"].split(",")]
    assert {"iptables", "mount"} <= set(depends)
    assert not {"kubernetes-cni", "cri-tools", "ebtables"} & set(depends)
    assert "../shared/k8s" in f["Description"] and COMMIT in f["Description"]
    files = {row[-1]: row for row in contents(deb)}
    assert {"./usr/bin/kubelet", "./lib/systemd/system/kubelet.service",
            "./lib/systemd/system/kubelet.service.d/10-kubeadm.conf"} <= set(files)
    assert not [p for p in files if p.startswith("./etc")]          # /etc/default/kubelet is the node's own
    assert {row[1] for row in files.values()} == {"root/root"}
    assert files["./usr/bin/kubelet"][0] == "-rwxr-xr-x"
    # every mtime is the binary's build date
    assert {f"{row[3]} {row[4]}" for row in files.values()} == {"2026-12-02 12:35"}

    root = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    unit = (root / "lib/systemd/system/kubelet.service").read_text()
    for line in ("ExecStart=/usr/bin/kubelet", "Restart=always", "RestartSec=10",
                 "After=network-online.target", "Wants=network-online.target"):
        assert line in unit.splitlines()
    dropin = (root / "lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text().splitlines()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "EnvironmentFile=-/etc/default/kubelet" in dropin
    execs = [line for line in dropin if line.startswith("ExecStart=")]
    assert execs == ["ExecStart=", "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
                                   "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS"]
    assert any("--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf" in line for line in dropin)
    assert any("--config=/var/lib/kubelet/config.yaml" in line for line in dropin)


def test_kubeadm_and_kubectl_packages(tmp_path):
    kubeadm = lab_debs.build("kubeadm", fake_binary(tmp_path / "bin", "kubeadm"), tmp_path / "out")
    kubectl = lab_debs.build("kubectl", fake_binary(tmp_path / "bin", "kubectl"), tmp_path / "out")
    assert info(kubeadm)["Depends"] == "kubelet, kubectl"
    assert "Depends" not in info(kubectl)
    assert [row[-1] for row in contents(kubectl)] == ["./", "./usr/", "./usr/bin/", "./usr/bin/kubectl"]


def test_rebuild_gives_the_same_bytes_and_an_unchanged_binary_is_not_packaged_again(tmp_path, capsys):
    binary, out = fake_binary(tmp_path / "bin", "kubelet"), tmp_path / "out"
    first = lab_debs.build("kubelet", binary, out).read_bytes()
    (out / ".kubelet.stamp").unlink()                   # forget the cache: a real rebuild
    deb = lab_debs.build("kubelet", binary, out)
    assert deb.read_bytes() == first
    mtime = deb.stat().st_mtime_ns
    capsys.readouterr()
    assert lab_debs.build("kubelet", binary, out) == deb
    assert "up to date" in capsys.readouterr().err
    assert deb.stat().st_mtime_ns == mtime

    fake_binary(tmp_path / "bin", "kubelet", "v1.35.0-lab.1", extra="a new build")
    newer = lab_debs.build("kubelet", binary, out)
    assert newer.name == "kubelet_1.35.0~lab.1-1_amd64.deb"
    assert sorted(p.name for p in out.glob("*.deb")) == [newer.name]     # the old version is gone


def test_source_date_epoch_overrides_the_build_date(tmp_path, monkeypatch):
    epoch = 1_700_000_000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
    deb = lab_debs.build("kubectl", fake_binary(tmp_path / "bin", "kubectl"), tmp_path / "out")
    stamp = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")
    assert {f"{row[3]} {row[4]}" for row in contents(deb)} == {stamp}

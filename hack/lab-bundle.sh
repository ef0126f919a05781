#!/usr/bin/env bash
# make lab-bundle: the offline bundle examples/local.yaml installs from (.tools/lab-bundle.tar), made from the
# Kubernetes build in ../shared/k8s (CCP_SHARED_K8S overrides the path):
#   1. its images (`lab images` into .tools/lab), and those of its second build, v1.35.0-lab.1 (`lab next`
#      into .tools/lab/next: the upgrade's target), staged as images/<ccp.bundle.manifest.image_file(ref)>
#   2. Debian packages of kubeadm, kubelet and kubectl built from both builds' binaries (hack/lab_debs.py)
#   3. Debian's own containerd, runc and containernetworking-plugins (apt-get download)
#   4. packed and verified by ccp (bundle create / verify --with-bom) against examples/local.yaml, its
#      lab/bom.yaml and the upgrade target's lab/bom-next.yaml: one bundle for the install and the upgrade
# The staging directory is .tools/lab-bundle.d (hard links, so it costs no space). Every step is cached: a
# second run takes seconds and leaves the bundle alone unless an input changed. Needs root (as `lab` does).
set -euo pipefail
shopt -s nullglob
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
K8S=${CCP_SHARED_K8S:-$ROOT/../shared/k8s}
TOOLS=$ROOT/.tools
LAB=$TOOLS/lab                # `lab images` output: bin/, images/ (and its own caches)
DEBS=$TOOLS/lab-debs          # our kubeadm/kubelet/kubectl packages; debian/: the downloaded ones
STAGE=$TOOLS/lab-bundle.d     # what `ccp bundle create --from` reads: images/, packages/
BUNDLE=$TOOLS/lab-bundle.tar
CONFIG=examples/local.yaml
BOM=examples/lab/bom.yaml
NEXT_BOM=examples/lab/bom-next.yaml   # the upgrade's target: `ccp upgrade --to 1.35.0-lab.1 --bill-of-materials` it
CCP=$ROOT/.venv/bin/ccp
PY=$ROOT/.venv/bin/python
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins)

say() { echo "[lab-bundle] $*" >&2; }
die() { echo "[lab-bundle] error: $*" >&2; exit 1; }
rel() { echo "${1#"$ROOT"/}"; }

[ -x "$K8S/lab" ] || die "no Kubernetes build at $K8S (expected its 'lab' script there): set CCP_SHARED_K8S to the shared/k8s directory"
K8S=$(cd "$K8S" && pwd)
[ -x "$CCP" ] || die "$(rel "$CCP") is missing: run hack/setup.sh (make setup) first"
[ "$(id -u)" = 0 ] || die "run as root: $K8S/lab installs Debian packages and builds image roots"
for tool in dpkg-deb apt-get apt-cache flock; do command -v $tool >/dev/null || die "$tool is not installed"; done
mkdir -p "$TOOLS" "$DEBS/debian" "$STAGE/images" "$STAGE/packages"
exec 9>"$TOOLS/lab-bundle.lock"
flock -n 9 || die "another lab-bundle run holds $(rel "$TOOLS")/lab-bundle.lock"
started=$SECONDS

# -- 1. images: `lab images` rebuilds every image each time it runs, so it runs only when shared/k8s changed
fingerprint=$(cd "$K8S" && find lab tools files bin -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
stamp=$LAB/.lab-bundle.inputs
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] && images=("$LAB"/images/*.tar "$LAB"/next/images/*.tar) \
   && [ ${#images[@]} -gt 0 ] && [ -x "$LAB/next/bin/kubeadm" ]; then
  say "images: up to date in $(rel "$LAB")/images and next/images ($K8S unchanged)"
else
  say "images: $K8S/lab images $(rel "$LAB") (about a minute the first time; log in $(rel "$TOOLS")/lab-images.log)"
  # `lab` unpacks only binaries that are missing and lays out pause/busybox once: start those afresh
  rm -rf "${LAB:?}/bin" "$LAB/.laid" "$LAB/next" "$stamp"
  if ! "$K8S/lab" images "$LAB" >"$TOOLS/lab-images.log" 2>&1; then
    tail -n 20 "$TOOLS/lab-images.log" >&2
    die "$K8S/lab images failed (above: the end of $(rel "$TOOLS")/lab-images.log)"
  fi
  say "images: $K8S/lab next $(rel "$LAB") (the second build, the upgrade's target)"
  if ! "$K8S/lab" next "$LAB" >>"$TOOLS/lab-images.log" 2>&1; then
    tail -n 20 "$TOOLS/lab-images.log" >&2
    die "$K8S/lab next failed (above: the end of $(rel "$TOOLS")/lab-images.log)"
  fi
  echo "$fingerprint" >"$stamp"
fi

# Each tag in each image tar becomes images/<image_file(tag)>: a hard link when the tar holds that tag
# alone; a single-tag copy otherwise (`ctr images import` creates every tag a tar names: the bundle's
# file for pause:3.10.1 should not also bring pause:3.6). Files are replaced only when their content changes,
# and nothing else touches the staging directory: step 4 compares its mtimes with the bundle's.
"$PY" - "$(rel "$STAGE/images")" "$TOOLS" "$(rel "$LAB/images")" "$(rel "$LAB/next/images")" <<'EOF'
import filecmp, io, json, os, sys, tarfile
from pathlib import Path
from ccp.bundle.manifest import image_file

dest_dir, scratch, src_dirs = Path(sys.argv[1]), Path(sys.argv[2]), [Path(a) for a in sys.argv[3:]]
def say(text): print(f"[lab-bundle] {text}", file=sys.stderr)

def single_tag_copy(src, entry, tag, out):
    with tarfile.open(src) as t, tarfile.open(out, "w") as o:
        for name in [entry["Config"], *entry["Layers"]]:
            info = t.getmember(name)
            o.addfile(info, t.extractfile(info))
        data = json.dumps([{**entry, "RepoTags": [tag]}]).encode()
        info = tarfile.TarInfo("manifest.json"); info.size = len(data)
        o.addfile(info, io.BytesIO(data))

wanted, changed = {}, []
for src in [t for d in src_dirs for t in sorted(d.glob("*.tar"))]:
    with tarfile.open(src) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    tags = [(entry, tag) for entry in manifest for tag in entry.get("RepoTags") or []]
    for entry, tag in tags:
        dest = dest_dir / Path(image_file(tag)).name
        if dest.name in wanted:
            sys.exit(f"[lab-bundle] error: {tag} is in both {wanted[dest.name]} and {src}")
        wanted[dest.name] = src
        # made beside, not inside, the staging directory: a file come and gone there changes its mtime
        tmp = scratch / f".lab-bundle.{dest.name}"
        if len(tags) == 1:
            if dest.exists() and dest.samefile(src):
                continue
            tmp.unlink(missing_ok=True); os.link(src, tmp)
            how = f"link to {src.name}"
        else:
            single_tag_copy(src, entry, tag, tmp)
            if dest.exists() and filecmp.cmp(tmp, dest, shallow=False):
                tmp.unlink(); continue
            how = f"a single-tag copy: {src.name} has {len(tags)} tags"
        os.replace(tmp, dest)
        changed.append(f"{tag} -> images/{dest.name} ({how})")
removed = [p for p in dest_dir.iterdir() if p.name not in wanted]
for p in removed:
    p.unlink()
for line in changed:
    say(f"  staged {line}")
for p in removed:
    say(f"  removed images/{p.name} (no longer made by the lab)")
say(f"images: {len(wanted)} references staged from {len({*wanted.values()})} tars in {dest_dir}"
    f" ({len(changed)} changed, {len(removed)} removed)")
EOF

# -- 2. kubeadm, kubelet, kubectl packages from both builds' binaries (rebuilt only when a binary changes)
built_list=$(python3 hack/lab_debs.py "$(rel "$LAB/bin")" "$(rel "$DEBS")" kubeadm kubelet kubectl) || die "building the packages failed"
next_list=$(python3 hack/lab_debs.py "$(rel "$LAB/next/bin")" "$(rel "$DEBS")/next" kubeadm kubelet kubectl) \
  || die "building the packages of the second build failed"
mapfile -t built <<<"$built_list"$'\n'"$next_list"

# -- 3. Debian's containerd, runc and CNI plugins: the candidate versions apt knows, each downloaded once
declare -A candidate=()
read_candidates() {   # one apt-cache call for all three (each call costs half a second)
  candidate=()
  local pkg version
  while read -r pkg version; do [ "$version" = "(none)" ] || candidate[$pkg]=$version; done \
    < <(apt-cache policy "${DEBIAN_PACKAGES[@]}" 2>/dev/null | awk '/^[^ ].*:$/{p = substr($0, 1, length($0) - 1)} /Candidate:/{print p, $2}')
}
read_candidates
if [ ${#candidate[@]} -lt ${#DEBIAN_PACKAGES[@]} ]; then
  say "packages: apt knows no candidate for some of ${DEBIAN_PACKAGES[*]}: apt-get update"
  apt-get update -qq
  read_candidates
fi
fetched=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  version=${candidate[$pkg]:-}
  [ -n "$version" ] || die "no Debian package $pkg in this host's apt sources"
  download() { (cd "$DEBS/debian" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version"); }
  have=("$DEBS/debian/${pkg}_${version//:/%3a}_"*.deb)     # apt-get download's name for it (epoch's : as %3a)
  if [ ${#have[@]} -gt 0 ]; then
    say "packages: $(basename "${have[0]}"): already downloaded"
  else
    say "packages: apt-get download $pkg=$version"
    download || { say "packages: download failed; apt-get update and again"; apt-get update -qq && download; } \
      || die "apt-get download $pkg=$version failed"
    have=("$DEBS/debian/${pkg}_${version//:/%3a}_"*.deb)
    [ ${#have[@]} -gt 0 ] || die "apt-get download $pkg=$version wrote no ${pkg}_*.deb into $(rel "$DEBS")/debian"
  fi
  for old in "$DEBS/debian/${pkg}"_*.deb; do [ "$old" = "${have[0]}" ] || rm -f "$old"; done
  fetched+=("${have[0]}")
done

# packages/ holds exactly these, as hard links (replaced only when they point elsewhere)
declare -A keep=()
for f in "${built[@]}" "${fetched[@]}"; do
  dest=$STAGE/packages/$(basename "$f")
  keep[$(basename "$f")]=1
  [ "$f" -ef "$dest" ] || { ln -f "$f" "$dest"; say "  staged packages/$(basename "$f")"; }
done
for f in "$STAGE"/packages/*; do
  [ -n "${keep[$(basename "$f")]:-}" ] || { rm -f "$f"; say "  removed packages/$(basename "$f") (no longer made)"; }
done
say "packages: ${#keep[@]} .deb files staged in $(rel "$STAGE")/packages"

# -- 4. pack with ccp, unless the bundle is newer than everything that goes into it (and still holds what
# the config needs: ccp's idea of that may have changed since)
pack() {
  say "bundle: ccp bundle create --config $CONFIG --with-bom $NEXT_BOM --from $(rel "$STAGE") --out $(rel "$BUNDLE")"
  "$CCP" bundle create --config "$CONFIG" --with-bom "$NEXT_BOM" --from "$STAGE" --out "$BUNDLE" >&2
}
verify() {
  say "bundle: ccp bundle verify --config $CONFIG --with-bom $NEXT_BOM --bundle $(rel "$BUNDLE")"
  "$CCP" bundle verify --config "$CONFIG" --with-bom "$NEXT_BOM" --bundle "$BUNDLE" >&2
}
if [ -f "$BUNDLE" ] && [ -z "$(find "$STAGE" "$CONFIG" "$BOM" "$NEXT_BOM" -newer "$BUNDLE" -print -quit)" ]; then
  say "bundle: $(rel "$BUNDLE") is newer than every input: not packed again"
  verify || { say "bundle: it no longer holds what $CONFIG needs: packing again"; pack; verify; }
else
  pack
  verify
fi

bytes=$(stat -c %s "$BUNDLE")
items=$(python3 -c 'import json, sys, tarfile; t = tarfile.open(sys.argv[1]); print(len(json.load(t.extractfile(t.next()))["items"]))' "$BUNDLE")
say "done in $((SECONDS - started)) s"
echo "$(rel "$BUNDLE"): $(numfmt --to=iec-i --suffix=B "$bytes") ($bytes bytes), $items items"

"""Time each validation check against a real cluster, for the README's published table.

usage: python bench/validate.py KUBECONFIG [--storage-class SC] [--image IMG]
Prints the time of every check (and the PVC's first-attach and re-attach times); asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kubeconfig")
    ap.add_argument("--storage-class")
    ap.add_argument("--image")
    args = ap.parse_args()
    from ccp.validation import runner
    from ccp.validation.base import Options
    from ccp.validation.port import LightkubeValidation

    opts = Options(storage_class=args.storage_class, **({"image": args.image} if args.image else {}))
    results, _ = runner.run(LightkubeValidation(Path(args.kubeconfig)), opts)
    print(f"{'check':<18}{'result':<9}{'seconds':>8}  detail")
    for r in results:
        print(f"{r.check:<18}{r.status:<9}{r.seconds:>8.1f}  {r.detail}")
    pvc = next((r for r in results if r.check == "pvc-persistence" and r.measurements), None)
    if pvc:
        print(f"\nPVC: first attach {pvc.measurements['firstAttachSeconds']}s, re-attach {pvc.measurements['reattachSeconds']}s "
              f"({'across nodes' if pvc.measurements['crossNode'] else 'same node'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The certificate renewal timer on each control plane (spec.security.certificates; phase certs/auto-renew), read
over SSH with `systemctl show` and the service's last journal lines (its own log: names and dates, never a key).
A control plane whose timer is missing or not active, or whose last run failed, is a failing finding: nothing
else renews its certificates before they expire."""

from __future__ import annotations

from ccp.diagnose.base import Finding, sample

UNIT = "ccp-cert-renew"
PROPERTIES = ("LoadState", "ActiveState", "UnitFileState", "NextElapseUSecRealtime", "LastTriggerUSec", "Result",
              "ExecMainStatus", "ExecMainExitTimestamp")
SCRIPT = (f"for u in timer service; do systemctl show {UNIT}.$u " + " ".join(f"-p {p}" for p in PROPERTIES)
          + " 2>/dev/null | sed \"s/^/$u./\"; done; "
          f"journalctl -u {UNIT}.service -n 3 -o cat --no-pager -q 2>/dev/null | cut -c1-300 | sed 's/^/log=/'; true")
FIX = "ccp apply --config cluster.yaml (its phase certs/auto-renew installs and enables the timer)"


def parse(text: str) -> dict:
    """``timer.X`` and ``service.X`` properties, and ``log``: the service's last journal lines."""
    out: dict = {"log": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "log":
            out["log"].append(value)
        else:
            out[key] = value.strip()
    return out


def findings(states: dict[str, dict], certificates, unread: list[str] = ()) -> list[Finding]:
    """``states``: control plane -> parse(); ``certificates``: spec.security.certificates; ``unread``: control
    planes that could not be asked (their SSH failure is the hosts section's finding)."""
    if not certificates.autoRenew:
        return [Finding("certs", "auto-renew", "warn", "automatic certificate renewal is off "
                        "(spec.security.certificates.autoRenew: false)", [],
                        "renew before they expire with `ccp certs renew`, or turn autoRenew on and run ccp apply")]
    out, fine = [], []
    for node, s in sorted(states.items()):
        timer = s.get("timer.LoadState", "")
        if not timer:
            out.append(Finding("certs", "auto-renew", "warn", f"{node}: the certificate renewal timer's state could not be read",
                               [], f"on {node}: systemctl status {UNIT}.timer"))
        elif timer != "loaded":
            out.append(Finding("certs", "auto-renew", "fail", f"{node}: the certificate renewal timer is missing ({timer})",
                               [], FIX))
        elif s.get("timer.ActiveState") != "active" or s.get("timer.UnitFileState") != "enabled":
            out.append(Finding("certs", "auto-renew", "fail", f"{node}: the certificate renewal timer is "
                               f"{s.get('timer.ActiveState', '?')} and {s.get('timer.UnitFileState') or 'not enabled'}",
                               [], FIX))
        elif s.get("service.ExecMainExitTimestamp") and s.get("service.Result", "success") != "success":
            out.append(Finding("certs", "auto-renew", "fail",
                               f"{node}: the last certificate renewal run failed ({s['service.Result']}, exit "
                               f"{s.get('service.ExecMainStatus', '?')}) at {s['service.ExecMainExitTimestamp']}",
                               sample(s["log"], 3), f"journalctl -u {UNIT} on {node} says why; the timer tries again "
                               "daily — fix that, or renew now with `ccp certs renew`"))
        else:
            last = s.get("service.ExecMainExitTimestamp") or "not run yet"
            fine.append(f"{node}: next {s.get('timer.NextElapseUSecRealtime') or '?'}, last {last}")
    if fine:
        out.append(Finding("certs", "auto-renew", "ok", f"{len(fine)} control plane(s): the renewal timer is active "
                           f"(renews below {certificates.renewBeforeDays} days left)", sample(fine)))
    for node in sorted(unread):
        out.append(Finding("certs", "auto-renew", "warn", f"{node}: the certificate renewal timer was not read", [],
                           "see the hosts section: the control plane could not be reached"))
    return out

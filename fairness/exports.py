"""The compliance report flattened for CSV export."""

import json


def report_rows(report: dict):
    """The report flattened to (section, item, field, value, ci_low, ci_high) rows."""
    yield ("version", report["model"], "version", report["version"], "", "")
    for key in ("status", "artifact_sha256", "decision_threshold", "registered_by"):
        yield ("version", report["model"], key, report[key], "", "")
    for key, value in report["metrics"].items():
        yield ("metrics", report["version"], key, value, "", "")
    for key, value in report["model_card"].items():
        yield ("model_card", report["version"], key, value, "", "")
    for audit in report["fairness_audits"]:
        yield from _audit_rows(audit)
    for request in report["approval_history"]:
        item = f"request #{request['id']}"
        yield (
            "approval",
            item,
            "requested",
            f"{request['requested_by']} {request['requested_at']}",
            "",
            "",
        )
        yield ("approval", item, "status", request["status"], "", "")
        yield ("approval", item, "evidence_sha256", request["evidence_hash"], "", "")
        for check in request["evidence"].get("policy_checks", []):
            yield ("approval", item, f"check: {check['check']}", check["passed"], "", "")
        for d in request["decisions"]:
            value = f"{d['decision']} by {d['approver']} {d['decided_at']}: {d['notes']}"
            yield ("approval", item, "decision", value, "", "")
    for e in report["audit_trail"]:
        payload = json.dumps(e["payload"], sort_keys=True)
        yield (
            "audit_trail",
            f"#{e['id']} {e['created_at']}",
            e["action"],
            f"{e['actor']} {payload}",
            "",
            "",
        )


def _audit_rows(audit: dict):
    item = f"audit #{audit['id']}"
    yield ("fairness_audit", item, "source", audit["source"], "", "")
    yield ("fairness_audit", item, "status", audit["status"], "", "")
    yield ("fairness_audit", item, "verdict", audit["verdict"], "", "")
    for reason in audit["reasons"]:
        yield (
            "fairness_audit",
            item,
            f"reason: {reason.get('code')}",
            reason.get("message"),
            "",
            "",
        )
    for group in audit["result"].get("groups", []):
        subject = f"{item} {group['name']}"
        yield ("fairness_group", subject, "count", group["count"], "", "")
        for metric, m in group["metrics"].items():
            ci = m["ci"] or ["", ""]
            yield ("fairness_group", subject, metric, m["value"], ci[0], ci[1])
        for metric, rule in group["four_fifths"].items():
            ci = rule["ci"] or ["", ""]
            yield ("four_fifths", subject, f"{metric} ratio", rule["ratio"], ci[0], ci[1])
            yield ("four_fifths", subject, f"{metric} status", rule["status"], "", "")

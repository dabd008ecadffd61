"""deploy/prometheus: the configs load, the alert rules are well formed and use metrics the
services define, and `promtool test rules` proves each alert fires when it should and stays
silent otherwise. To show those unit tests would catch a wrong rule, each rule is broken on
purpose (never fires, always fires, threshold doubled or halved) and the tests must fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts_test.yml"

SEVERITIES = {"critical", "warning"}
#: Alert labels beyond alertname: routing only, nothing about a record.
ALERT_LABELS = {"severity", "service"}


def _alerts() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


ALERTS = _alerts()
_THRESHOLD = re.compile(r"(?P<op>==|!=|>=|<=|>|<)\s*(?P<num>\d+(?:\.\d+)?)(?![\w.])")


def _mutations() -> list[tuple[str, str, str]]:
    """(alert, what, broken expression) for every alert."""
    out = []
    for name, rule in ALERTS.items():
        expr = rule["expr"]
        out.append((name, "never fires", "vector(1) < 0"))
        out.append((name, "always fires", "vector(1)"))
        for m in _THRESHOLD.finditer(expr):
            value = float(m.group("num"))
            if value == 0:
                continue
            for factor in (2, 0.5):
                broken = expr[: m.start("num")] + repr(value * factor) + expr[m.end("num") :]
                out.append((name, f"threshold {m.group(0)!r} x{factor}", broken))
    return out


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_alerts_cover_the_issue() -> None:
    """Consumer lag, DLQ growth, outbox age, error rate, a service down, overdue P1 cases."""
    exprs = {name: rule["expr"] for name, rule in ALERTS.items()}
    wanted = {
        "consumer lag": "cpu_consumer_lag",
        "dead-letter growth": "cpu_dlq_depth",
        "outbox age": "cpu_outbox_oldest_age_seconds",
        "HTTP error rate": "_http_requests_total",
        "service down": "up{",
        "overdue P1 cases": "cpu_casework_overdue_first_contact",
    }
    for what, needle in wanted.items():
        assert any(needle in e for e in exprs.values()), f"no alert rule for {what}"
    assert any('status=~"5.."' in e for e in exprs.values())
    assert any('priority="P1"' in e for e in exprs.values())
    assert any(re.search(r"\bup\{[^}]*\}[\s\S]*==\s*0", e) for e in exprs.values())


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_runbook_ready_and_names_no_person(name: str) -> None:
    rule = ALERTS[name]
    labels = rule.get("labels", {})
    assert labels.get("severity") in SEVERITIES
    assert set(labels) <= ALERT_LABELS, f"unexpected alert labels {set(labels) - ALERT_LABELS}"
    annotations = rule.get("annotations", {})
    assert set(annotations) >= {"summary", "description"}
    description = annotations["description"]
    assert len(description) > 150, "the description should tell the operator what to do"
    assert "Check" in description, "the description names what to check"
    text = " ".join(annotations.values())
    # Templates may only print labels that name parts of the platform, never a record.
    used = set(re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used <= {"service", "job", "instance", "group", "topic", "partition", "team"}, used
    assert "$labels }}" not in text and "{{ $labels}}" not in text
    assert rule.get("for", "0s") != "" and "expr" in rule


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_uses_metrics_the_services_define(name, metric_catalogue, promql) -> None:
    assert promql.check(ALERTS[name]["expr"], metric_catalogue) == []


def test_rule_file_is_valid(promtool: str) -> None:
    result = _promtool(promtool, "check", "rules", RULES.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_every_alert_has_unit_tests_that_fire_and_stay_silent() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert doc["rule_files"] == [RULES.name]
    fired: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for check in test.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
            for alert in check.get("exp_alerts") or []:
                # Expected alerts spell out their annotations, so templates are tested too.
                assert set(alert.get("exp_annotations", {})) >= {"summary", "description"}
    assert fired == set(ALERTS), f"never shown firing: {set(ALERTS) - fired}"
    assert silent == set(ALERTS), f"never shown silent: {set(ALERTS) - silent}"
    healthy = doc["tests"][0]["alert_rule_test"]
    assert {c["alertname"] for c in healthy if not c["exp_alerts"]} == set(ALERTS)


def test_alert_unit_tests_pass(promtool: str) -> None:
    result = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _run_broken(promtool: str, workdir: Path, name: str, broken: str) -> str | None:
    """Run the unit tests against alerts.yml with ``name``'s expression replaced by
    ``broken``; return None when they fail as they should, else what went wrong."""
    workdir.mkdir()
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["expr"] = broken
    (workdir / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    shutil.copy(RULE_TESTS, workdir / RULE_TESTS.name)
    check = _promtool(promtool, "check", "rules", RULES.name, cwd=workdir)
    if check.returncode != 0:
        return f"the broken rule does not even load: {check.stdout}{check.stderr}"
    result = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=workdir)
    if result.returncode == 0:
        return "the unit tests still pass"
    if f"alertname: {name}" not in result.stdout + result.stderr:
        return "the unit tests fail, but not on this alert"
    return None


def test_unit_tests_catch_every_broken_rule(promtool: str, tmp_path: Path) -> None:
    """Each rule broken on purpose (never fires, always fires, each non-zero threshold doubled
    and halved) must make `promtool test rules` fail on that alert."""
    mutations = _mutations()
    assert len(mutations) > 2 * len(ALERTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(_run_broken, promtool, tmp_path / f"mutation-{i}", name, broken)
            for i, (name, _, broken) in enumerate(mutations)
        ]
        outcomes = [f.result() for f in futures]
    survivors = [
        f"{name} ({what}): {outcome}"
        for (name, what, _), outcome in zip(mutations, outcomes, strict=True)
        if outcome is not None
    ]
    assert survivors == [], "broken rules the unit tests do not notice:\n" + "\n".join(survivors)


def test_compose_prometheus_config_is_valid(promtool: str, yaml_docs) -> None:
    result = _promtool(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml_docs(PROMETHEUS / "prometheus.yml")[0]
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The rules select services by job: one job per service, named after it.
    ports = {"intake": 8101, "casework": 8102, "forensics": 8103, "icac": 8104, "reporting": 8105}
    for service, port in ports.items():
        assert jobs[service]["static_configs"][0]["targets"] == [f"{service}:{port}"]
        assert jobs[service].get("metrics_path", "/metrics") == "/metrics"


def test_kubernetes_prometheus_config_is_valid(promtool: str, tmp_path, yaml_docs) -> None:
    source = PROMETHEUS / "prometheus-k8s.yml"
    shutil.copy(RULES, tmp_path / RULES.name)
    result = _promtool(promtool, "check", "config", str(source.resolve()), cwd=tmp_path)
    if result.returncode != 0 and "kubernetes_sd_configs not found" in (
        result.stdout + result.stderr
    ):
        # Debian builds Prometheus without Kubernetes discovery: check everything else (the
        # relabelings, the rule file) with static targets in place of the discovery.
        config = yaml_docs(source)[0]
        for job in config["scrape_configs"]:
            job.pop("kubernetes_sd_configs")
            job["static_configs"] = [{"targets": ["placeholder:8101"]}]
        (tmp_path / "prometheus-k8s.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        result = _promtool(promtool, "check", "config", "prometheus-k8s.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml_docs(source)[0]
    services = next(j for j in config["scrape_configs"] if j["job_name"] == "cpu-services")
    # `job` must become the service name, which the pods carry as app.kubernetes.io/name.
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
        "target_label": "job",
    } in services["relabel_configs"]

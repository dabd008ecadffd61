"""Shared fixtures of the deploy/ tests: paths, the ops tools, the metrics the services define,
and a small PromQL reader that finds which metrics and labels an expression uses.

The metric catalogue comes from the code, not from a list kept by hand:

* every service's generic metrics (HTTP RED from prometheus-fastapi-instrumentator, faststream's
  broker metrics, outbox, consumer, lag) from a real ``ServiceRuntime`` app built for that
  service name, exactly as ``cpu_shared.service`` wires them, read from its registry;
* the services' own business metrics from their source (every ``Counter``/``Gauge``/
  ``Histogram``/``Summary`` created with a literal name), so a half-built service elsewhere in
  the workspace cannot hide the others.

``PENDING`` lists metrics the rules and the dashboard use that a service agreed to expose but
does not yet: they are accepted with their agreed labels, and
``test_deploy_grafana.py::test_pending_metrics`` skips (with the reason) until they exist.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "casework", "forensics", "icac", "reporting")
PORTS = {"intake": 8101, "casework": 8102, "forensics": 8103, "icac": 8104, "reporting": 8105}

#: Labels Prometheus adds to every scraped series (scrape job = service, replica, namespace).
TARGET_LABELS = frozenset({"job", "instance", "namespace"})

#: Agreed but not yet exposed: name -> labels. casework exposes the overdue gauge (issue 9).
PENDING: dict[str, frozenset[str]] = {
    "cpu_casework_overdue_first_contact": frozenset({"team", "priority"}),
}

#: Label names that may appear in rules, annotations and dashboards: codes and names of parts
#: of the platform, never anything about a person or a record.
NON_PERSONAL_LABELS = frozenset(
    {
        *TARGET_LABELS,
        "__name__",
        "le",
        "service",
        "group",
        "topic",
        "partition",
        "team",
        "priority",
        "handler",  # the route template (/api/v1/cases/{case_id}), never a concrete path
        "method",
        "status",
        "app_name",
        "broker",
        "destination",
        "exception_type",
    }
)

INSTALL_OPS_TOOLS = DEPLOY / "tools" / "install-ops-tools"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None and INSTALL_OPS_TOOLS.exists():
        # Idempotent, quiet and never fatal (make prereqs normally ran it already).
        subprocess.run([str(INSTALL_OPS_TOOLS)], check=False, timeout=600)
        path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed and deploy/tools/install-ops-tools could not install it "
            "(needs Debian's apt as root): install Debian's 'prometheus' and 'docker-compose' "
            "packages"
        )
    return path


@pytest.fixture(scope="session")
def pending_metrics() -> dict[str, frozenset[str]]:
    return dict(PENDING)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian's prometheus package), installed if missing, else skip."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of Debian's docker-compose 1.29, installed if missing, else skip."""
    return _tool("docker-compose")


# -- the metric catalogue ----------------------------------------------------------------------


@dataclass
class Catalogue:
    """Sample names the services expose, with their label names (target labels not included)."""

    labels: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Family name -> type ("counter", "gauge", "histogram", "summary", ...).
    types: dict[str, str] = field(default_factory=dict)
    #: Which source defined each family ("runtime:intake", "source:services/...").
    origin: dict[str, str] = field(default_factory=dict)

    def add(self, family: str, kind: str, labels: frozenset[str], origin: str) -> None:
        self.types.setdefault(family, kind)
        self.origin.setdefault(family, origin)
        for sample, extra in _samples(family, kind):
            self.labels[sample] = self.labels.get(sample, frozenset()) | labels | extra

    def __contains__(self, name: object) -> bool:
        return name in self.labels


def _samples(family: str, kind: str) -> list[tuple[str, frozenset[str]]]:
    none: frozenset[str] = frozenset()
    if kind == "counter":
        return [(f"{family}_total", none), (f"{family}_created", none)]
    if kind == "histogram":
        return [
            (f"{family}_bucket", frozenset({"le"})),
            (f"{family}_count", none),
            (f"{family}_sum", none),
            (f"{family}_created", none),
        ]
    if kind == "summary":
        return [
            (family, frozenset({"quantile"})),
            (f"{family}_count", none),
            (f"{family}_sum", none),
            (f"{family}_created", none),
        ]
    if kind == "info":
        return [(f"{family}_info", none)]
    return [(family, none)]


def _runtime_metrics(catalogue: Catalogue, tmp: Path) -> None:
    from fastapi.testclient import TestClient

    from cpu_shared.config import ServiceSettings
    from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable
    from cpu_shared.service import ServiceRuntime

    for service in SERVICES:
        settings = ServiceSettings(
            service_name=service,
            port=PORTS[service],
            database_url=f"sqlite+aiosqlite:///{tmp / service}.db",
            kafka_bootstrap_servers="127.0.0.1:9",
        )
        runtime = ServiceRuntime(settings, migrations_package=f"cpu_{service}.migrations")
        app = runtime.create_app(
            title=service, permissions=PermissionTable(service, dict(AUDIT_GRANTS))
        )
        # One request builds the middleware stack, which registers the HTTP metrics. No
        # lifespan runs (no context manager): no broker, no store.
        TestClient(app).get("/health")
        for collector in set(runtime.registry._names_to_collectors.values()):
            labels = frozenset(getattr(collector, "_labelnames", ()))
            for family in collector.describe():
                catalogue.add(family.name, family.type, labels, f"runtime:{service}")


_METRIC_CLASSES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "stateset",
}


def _literal_strings(node: ast.AST | None, names: dict[str, list[str]]) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        strings = [v for v in values if isinstance(v, str)]
        return strings if len(strings) == len(node.elts) else None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def _source_metrics(catalogue: Catalogue) -> None:
    files = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")]
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue  # someone's work in progress; its own tests report it
        # Simple `labels = ["topic", "group"]` bindings, wherever they are.
        names: dict[str, list[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                values = _literal_strings(node.value, {})
                if isinstance(target, ast.Name) and values is not None:
                    names[target.id] = values
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            cls = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if cls not in _METRIC_CLASSES or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            label_node = node.args[2] if len(node.args) > 2 else None
            for kw in node.keywords:
                if kw.arg == "labelnames":
                    label_node = kw.value
            labels = _literal_strings(label_node, names) or []
            family = first.value
            kind = _METRIC_CLASSES[cls]
            if kind == "counter" and family.endswith("_total"):
                family = family[: -len("_total")]
            origin = f"source:{path.relative_to(ROOT)}"
            catalogue.add(family, kind, frozenset(labels), origin)


@pytest.fixture(scope="session")
def metric_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    catalogue = Catalogue()
    _runtime_metrics(catalogue, tmp_path_factory.mktemp("metric-catalogue"))
    _source_metrics(catalogue)
    return catalogue


# -- reading PromQL ----------------------------------------------------------------------------

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${service}": "|".join(SERVICES),
    "$service": "|".join(SERVICES),
}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_OPERATORS = {"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"}
#: Aggregation operators: never metric names, though `sum by (x) (...)` has no "(" after them.
_AGGREGATORS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NUMBER = re.compile(r"[0-9.eE+]+[a-z]*")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*,?')


@dataclass
class Selector:
    """One vector selector: a metric name or a ``__name__`` regex, and its matchers."""

    name: str | None
    name_regex: str | None
    matchers: dict[str, str]


@dataclass
class PromQLRefs:
    selectors: list[Selector]
    #: Labels named in by/without/on/ignoring/group_left/group_right clauses.
    grouping: set[str]
    #: Labels created by label_replace (its second argument).
    created: set[str]


def substitute_grafana(expr: str) -> str:
    for key in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(key, GRAFANA_VARIABLES[key])
    return expr


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body.encode().decode("unicode_escape") if literal[0] != "`" else body


def _closing(text: str, start: int, open_: str, close: str) -> int:
    depth, i = 0, start
    while i < len(text):
        m = _STRING.match(text, i)
        if m:
            i = m.end()
            continue
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced {open_}{close} in {text!r}")


def _split_args(text: str) -> list[str]:
    args, depth, current, i = [], 0, "", 0
    while i < len(text):
        m = _STRING.match(text, i)
        if m:
            current += m.group(0)
            i = m.end()
            continue
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    args.append(current.strip())
    return args


def _matchers(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos:].strip():
        m = _MATCHER.match(body, pos)
        if not m:
            raise ValueError(f"cannot read label matchers {body!r}")
        out[m.group(1)] = m.group(2) + _unquote(m.group(3))
        pos = m.end()
    return out


def read_promql(expr: str) -> PromQLRefs:
    """The selectors, grouping labels and label_replace targets of one PromQL expression."""
    text = substitute_grafana(expr)
    refs = PromQLRefs(selectors=[], grouping=set(), created=set())
    for m in re.finditer(r"\blabel_replace\s*\(", text):
        end = _closing(text, m.end() - 1, "(", ")")
        args = _split_args(text[m.end() : end])
        if len(args) == 5 and _STRING.fullmatch(args[1]):
            refs.created.add(_unquote(args[1]))
    i = 0
    while i < len(text):
        literal = _STRING.match(text, i)
        if literal:
            i = literal.end()
            continue
        ch = text[i]
        if ch == "{":
            end = _closing(text, i, "{", "}")
            bare = _matchers(text[i + 1 : end])
            by_name = bare.pop("__name__", "")
            if by_name.startswith("=~"):
                refs.selectors.append(Selector(None, by_name[2:], bare))
            elif by_name.startswith("=") and not by_name.startswith("=~"):
                refs.selectors.append(Selector(by_name[1:], None, bare))
            else:  # no name, or a negative match: nothing to check a name against
                refs.selectors.append(Selector(None, None, bare))
            i = end + 1
            continue
        if ch == "[":  # a range or subquery: durations only
            i = _closing(text, i, "[", "]") + 1
            continue
        if ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit()):
            number = _NUMBER.match(text, i)
            i = number.end() if number else i + 1
            continue
        ident = _IDENT.match(text, i)
        if not ident:
            i += 1
            continue
        word, j = ident.group(0), ident.end()
        rest = text[j:].lstrip()
        after = j + (len(text[j:]) - len(rest))
        if word in _KEYWORDS:
            if rest.startswith("("):
                end = _closing(text, after, "(", ")")
                refs.grouping |= {x.strip() for x in text[after + 1 : end].split(",") if x.strip()}
                i = end + 1
            else:
                i = j
            continue
        if word in _OPERATORS or word in _AGGREGATORS or rest.startswith("("):
            i = j  # a function, an aggregation or an operator
            continue
        matchers: dict[str, str] = {}
        if rest.startswith("{"):
            end = _closing(text, after, "{", "}")
            matchers = _matchers(text[after + 1 : end])
            j = end + 1
        refs.selectors.append(Selector(word, None, matchers))
        i = j
    return refs


def _expand_name_regex(regex: str) -> list[str] | None:
    """``cpu_(a|b)_x`` -> [cpu_a_x, cpu_b_x]; None for any other shape."""
    m = re.fullmatch(r"([a-z0-9_:]*)\(([a-z0-9_|]+)\)([a-z0-9_:]*)", regex)
    if not m:
        return None
    return [f"{m.group(1)}{alt}{m.group(3)}" for alt in m.group(2).split("|")]


def check_promql(expr: str, catalogue: Catalogue) -> list[str]:
    """Problems with ``expr``: unknown metrics, labels a metric does not have, grouping by a
    label none of its metrics carries, label names that could hold personal data."""
    problems: list[str] = []
    refs = read_promql(expr)
    known = {**catalogue.labels, **PENDING}
    available: set[str] = set(TARGET_LABELS) | refs.created
    if not refs.selectors:
        problems.append("no metric selector")
    for sel in refs.selectors:
        if sel.name is not None:
            names = [sel.name]
            if sel.name == "up":
                labels_of: dict[str, frozenset[str]] = {"up": frozenset()}
            else:
                labels_of = {n: known[n] for n in names if n in known}
                if sel.name not in known:
                    problems.append(f"unknown metric {sel.name}")
                    continue
        elif sel.name_regex is not None:
            expanded = _expand_name_regex(sel.name_regex)
            if expanded is not None:
                missing = [n for n in expanded if n not in known]
                if missing:
                    problems.append(f"__name__=~{sel.name_regex!r}: unknown {missing}")
                names = [n for n in expanded if n in known]
            else:
                pattern = re.compile(sel.name_regex)
                names = [n for n in known if pattern.fullmatch(n)]
                if not names:
                    problems.append(f"__name__=~{sel.name_regex!r} matches no metric")
            labels_of = {n: known[n] for n in names}
        else:
            problems.append("selector without a metric name")
            continue
        for name, labels in labels_of.items():
            available |= labels
            for label in sel.matchers:
                if label not in labels and label not in TARGET_LABELS:
                    problems.append(f"{name} has no label {label!r}")
        for label in sel.matchers:
            if label not in NON_PERSONAL_LABELS:
                problems.append(f"label {label!r} is not on the non-personal list")
    for label in refs.grouping:
        if label not in available:
            problems.append(f"groups by {label!r}, which none of its metrics has")
        if label not in NON_PERSONAL_LABELS:
            problems.append(f"label {label!r} is not on the non-personal list")
    return problems


@dataclass
class PromQL:
    """The PromQL helpers, handed to tests as one fixture."""

    read = staticmethod(read_promql)
    check = staticmethod(check_promql)
    substitute_grafana = staticmethod(substitute_grafana)


@pytest.fixture(scope="session")
def promql() -> PromQL:
    return PromQL()


def load_yaml_docs(path: Path) -> list[dict[str, object]]:
    """Every document of a YAML file (empty documents dropped)."""
    import yaml

    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


@pytest.fixture(scope="session")
def yaml_docs() -> Callable[[Path], list[dict[str, object]]]:
    """``yaml_docs(path)``: every document of a YAML file."""
    return load_yaml_docs

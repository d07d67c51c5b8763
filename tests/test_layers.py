"""The layers run one way (docs/architecture.md): every module of the project is read (ast, nothing imported) and
each import is checked against the rules below. A function-level import counts as much as one at the top.

- a domain app never imports another domain app's screens (admin, views, forms, api, or a module under them);
- core is the bottom layer: it imports no app of the project;
- stores imports neither approvals nor a domain app;
- approvals sits above stores and below the domain apps: it imports none of them;
- integrations (the event outbox every domain app writes to) imports no other domain app.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent
SKIPPED_PARTS = {"migrations", "tests", "bench", ".venv", "node_modules", "__pycache__", ".git"}

DOMAIN_APPS = frozenset({"membership", "cards", "campaigns", "settlement", "reports", "integrations"})
PROJECT_APPS = frozenset({"core", "stores", "approvals", "config"}) | DOMAIN_APPS
SCREENS = frozenset({"admin", "views", "forms", "api"})


@dataclass(frozen=True)
class Import:
    source: str  # the importing file, relative to the project
    line: int
    module: str  # the module imported, dotted ("membership.admin.members")

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.module}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(BASE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, *, module: str, is_package: bool, path: str = "<string>") -> list[Import]:
    """Every module a piece of code imports, as dotted names. `from a import b` counts both a and a.b (b may be
    a submodule); relative imports are resolved from `module`; `import_module("x")` with a literal counts too."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found.extend(Import(path, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)] if node.level > 1 else base_parts
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                found.append(Import(path, node.lineno, base))
            found.extend(
                Import(path, node.lineno, f"{base}.{alias.name}" if base else alias.name)
                for alias in node.names
                if alias.name != "*"
            )
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and not node.args[0].value.startswith("."):
                found.append(Import(path, node.lineno, node.args[0].value))
    return found


def project_files() -> list[Path]:
    return sorted(
        path for path in BASE.rglob("*.py")
        if not SKIPPED_PARTS.intersection(path.relative_to(BASE).parts)
    )


def project_imports() -> list[Import]:
    found = []
    for path in project_files():
        found.extend(imports_of(
            path.read_text(encoding="utf-8"), module=_module_name(path), is_package=path.name == "__init__.py",
            path=str(path.relative_to(BASE)),
        ))
    return found


def _app(dotted_or_path: str) -> str:
    return dotted_or_path.replace("\\", "/").split("/")[0].split(".")[0]


def violation(found: Import) -> str | None:
    """Which rule an import breaks, or None."""
    importer, parts = _app(found.source), found.module.split(".")
    imported = parts[0]
    if imported not in PROJECT_APPS or imported == importer:
        return None
    if importer in DOMAIN_APPS and imported in DOMAIN_APPS and len(parts) > 1 and parts[1] in SCREENS:
        return "a domain app imports another domain app's screens"
    if importer == "core":
        return "core imports an app"
    if importer == "stores" and (imported == "approvals" or imported in DOMAIN_APPS):
        return "stores imports approvals or a domain app"
    if importer == "approvals" and imported in DOMAIN_APPS:
        return "approvals imports a domain app"
    if importer == "integrations" and imported in DOMAIN_APPS:
        return "integrations imports another domain app"
    return None


RULES = [
    "a domain app imports another domain app's screens",
    "core imports an app",
    "stores imports approvals or a domain app",
    "approvals imports a domain app",
    "integrations imports another domain app",
]


@pytest.fixture(scope="module")
def violations() -> dict[str, list[str]]:
    by_rule: dict[str, list[str]] = {rule: [] for rule in RULES}
    seen = set()
    # Shortest first: `from config.celery import app` is reported once, as config.celery.
    for found in sorted(project_imports(), key=lambda found: len(found.module)):
        rule = violation(found)
        if rule is not None and (found.source, found.line, rule) not in seen:
            seen.add((found.source, found.line, rule))
            by_rule[rule].append(str(found))
    return by_rule


@pytest.mark.parametrize("rule", RULES)
def test_layers_run_one_way(violations, rule):
    found = sorted(set(violations[rule]))

    assert not found, f"{rule}:\n" + "\n".join(found)


# --- the check itself ---------------------------------------------------------------------------------------


def test_every_app_is_read():
    apps_read = {_app(str(path.relative_to(BASE))) for path in project_files()}

    assert {"core", "stores", "approvals", "membership", "cards", "config"} <= apps_read
    assert not any("migrations" in path.parts or "tests" in path.parts for path in project_files())


@pytest.mark.parametrize(
    ("module", "is_package", "code", "rule"),
    [
        ("cards.views", False, "from membership.admin.members import StoreFilter", RULES[0]),
        ("cards.admin.cards", False, "from membership import forms", RULES[0]),
        ("cards.services.sales", False, "def f():\n    import membership.api\n", RULES[0]),
        ("cards.services.sales", False, "from membership.services import member_register", None),
        ("cards.admin", True, "from . import brands", None),
        ("core.admin", False, "from stores.queries import scope_queryset", RULES[1]),
        ("core.tasks", False, "from importlib import import_module\nimport_module('cards.tasks')", RULES[1]),
        ("core.errors", False, "from core import sql", None),
        ("stores.services", False, "from approvals.services import approval_request_submit", RULES[2]),
        ("stores.admin", False, "from cards.models import Card", RULES[2]),
        ("stores.admin", False, "from core.admin import BaseAdmin", None),
        ("approvals.services", False, "from membership.models import Member", RULES[3]),
        ("approvals.admin", False, "from stores.admin import StoreAdmin", None),
        ("membership.admin.members", False, "from ..forms import x", None),
        ("integrations.services.sending", False, "from membership.models import Member", RULES[4]),
        ("cards.services.ledger", False, "from integrations.events import event_emit", None),
    ],
)
def test_a_forbidden_import_is_found(module, is_package, code, rule):
    source = module.replace(".", "/") + ("/__init__.py" if is_package else ".py")

    rules = {violation(found) for found in imports_of(code, module=module, is_package=is_package, path=source)}

    assert rules - {None} == ({rule} if rule else set())

"""The import graph of src/xiaopu: no cycles, and the directions CONVENTIONS.md gives.

The graph is read from the source (ast), not from what happens to be imported at run time, and
every import counts: at module level, inside functions (a lazy import that dodges a cycle is
still a cycle to whoever reads the code) and under `if TYPE_CHECKING:` (a type named from another
package is a dependency on that package too).

The rules, at the granularity of packages (`xiaopu.orders`, with each top-level module such as
`xiaopu.db` a package of its own):

- Modules form no cycle, and neither do packages.
- The HTTP layer sits on top of every package, as app.py does: a package's `endpoints.py`, its
  `auth.py` (the typed dependencies saying who may call) and checkout's route answered ahead
  of the framework. Every domain's routes need `xiaopu.auth.auth` to know who is calling, while
  `auth` may emit webhooks ("anything → webhooks"), so the package graph is read from the other
  modules, and the HTTP layer gets rules of its own: only app.py and other HTTP-layer modules
  import it, and it takes another package's HTTP layer only as `xiaopu.auth.auth`, which every
  route shares. (So `webhooks/auth.py` importing `xiaopu.auth.auth` is no cycle: nothing that
  `auth` imports reaches it.)
- Directions: orders → commissions → ledger; payouts → ledger; anything → webhooks, and webhooks
  imports no domain; the job registry (xiaopu.jobs) imports the domains' job modules, which
  import the job types from xiaopu.queue and never the registry.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "xiaopu"

# Answered before FastAPI's routing, a route all the same. (The share-link redirect, the other
# hot path, is also the link cache that links/service.py keeps fresh: it is no route module.)
ROUTES_AHEAD = frozenset({"xiaopu.orders.checkout_route"})
# The typed dependencies every package's routes share.
SHARED_CALLER = "xiaopu.auth.auth"
# What composes the rest: nothing inside a domain package imports these.
COMPOSERS = frozenset({"xiaopu.app", "xiaopu.cli", "xiaopu.worker", "xiaopu.jobs", "xiaopu.seed"})
# Packages every domain builds on, which are not domains themselves.
FOUNDATIONS = frozenset({"xiaopu.kit", "xiaopu.models"})


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    where: str  # file:line, for the failure message

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} ({self.where})"


def find_modules(src: Path, root: str) -> dict[str, Path]:
    found = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The module a dotted name is (or is inside of): `xiaopu.auth.auth.CurrentPerson` is
    xiaopu.auth.auth. A name in a namespace package (no __init__.py) keeps its own name."""
    probe = name
    while probe and probe not in modules:
        probe = probe.rpartition(".")[0]
    return probe or name


def read_imports(src: Path, root: str) -> list[Import]:
    modules = find_modules(src, root)
    found = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        # ast.walk reaches imports in functions, classes and `if TYPE_CHECKING:` blocks alike.
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                # `from xiaopu.orders import jobs` imports the module xiaopu.orders.jobs.
                names = [f"{base}.{alias.name}" for alias in node.names]
            where = f"{path.relative_to(src.parent)}:{getattr(node, 'lineno', 0)}"
            for name in names:
                if name == root or name.startswith(root + "."):
                    target = _resolve(name, modules)
                    if target != module:
                        found.append(Import(module, target, where))
    return list(dict.fromkeys(found))  # `from a import b, c` is one import of a


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def in_http_layer(module: str) -> bool:
    parts = module.split(".")
    return module in ROUTES_AHEAD or (len(parts) == 3 and parts[-1] in ("endpoints", "auth"))


def find_cycle(edges: dict[str, dict[str, Import]]) -> list[Import] | None:
    """One cycle of the graph as the imports that make it, or None if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[tuple[str, Import]] = []  # the edges walked down to here, by their start

    def visit(node: str) -> list[Import] | None:
        state[node] = 1
        for target, why in sorted(edges.get(node, {}).items()):
            if state.get(target) == 1:  # back on the path: the cycle runs from there
                start = next(i for i, (source, _) in enumerate(path) if source == target)
                return [step for _, step in path[start:]] + [why]
            if target not in state:
                path.append((node, why))
                if (cycle := visit(target)) is not None:
                    return cycle
                path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def graph(imports: Iterable[Import], *, by_package: bool) -> dict[str, dict[str, Import]]:
    """importer → imported → one import that makes the edge (the first found)."""
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for imp in imports:
        a, b = imp.importer, imp.imported
        if by_package:
            a, b = package_of(a), package_of(b)
        if a != b and "." in b:  # not the root package's own __init__
            edges[a].setdefault(b, imp)
    return edges


def describe(cycle: list[Import], *, by_package: bool) -> str:
    def unit(module: str) -> str:
        return package_of(module) if by_package else module

    loop = " → ".join([unit(cycle[0].importer), *(unit(step.imported) for step in cycle)])
    return f"import cycle {loop}:\n" + "\n".join(f"  {step}" for step in cycle)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    found = read_imports(SRC, ROOT)
    # The reader works: a graph without its best-known edge would pass every rule below.
    assert any(
        package_of(i.importer) == "xiaopu.orders" and package_of(i.imported) == "xiaopu.commissions"
        for i in found
    ), "the import reader found no orders → commissions import"
    return found


def _domains() -> set[str]:
    """The subpackages of xiaopu but its foundations."""
    folders = (d for d in (SRC / ROOT).iterdir() if d.is_dir() and any(d.glob("*.py")))
    return {f"{ROOT}.{d.name}" for d in folders} - FOUNDATIONS


def test_no_module_imports_itself_back(imports: list[Import]) -> None:
    cycle = find_cycle(graph(imports, by_package=False))
    assert cycle is None, describe(cycle, by_package=False)


def test_packages_form_no_cycle_below_the_http_layer(imports: list[Import]) -> None:
    below = [i for i in imports if not in_http_layer(i.importer)]
    cycle = find_cycle(graph(below, by_package=True))
    assert cycle is None, describe(cycle, by_package=True) + (
        "\nMove the code to the package the direction allows (CONVENTIONS.md: orders → "
        "commissions → ledger; payouts → ledger; anything → webhooks), or have the caller "
        "pass what it needs."
    )


def test_the_http_layer_is_imported_only_from_above(imports: list[Import]) -> None:
    wrong = [
        i
        for i in imports
        if in_http_layer(i.imported)
        and i.importer != "xiaopu.app"
        and not (
            in_http_layer(i.importer)
            and (package_of(i.importer) == package_of(i.imported) or i.imported == SHARED_CALLER)
        )
    ]
    assert not wrong, (
        "Routes and typed caller dependencies are imported by app.py and by their own "
        "package's routes (and xiaopu.auth.auth by every route); declare a package's own alias "
        "in its auth.py instead of borrowing another package's:\n"
        + "\n".join(f"  {i}" for i in wrong)
    )


# (importer package, imported package, why)
DIRECTIONS = [
    ("xiaopu.commissions", "xiaopu.orders", "orders → commissions"),
    ("xiaopu.commissions", "xiaopu.payouts", "payouts → commissions → ledger"),
    ("xiaopu.ledger", "xiaopu.commissions", "commissions → ledger"),
    ("xiaopu.ledger", "xiaopu.orders", "orders → commissions → ledger"),
    ("xiaopu.ledger", "xiaopu.payouts", "payouts → ledger"),
    ("xiaopu.ledger", "xiaopu.settlements", "settlements → ledger"),
    ("xiaopu.organisations", "xiaopu.shops", "shops → organisations"),
]


@pytest.mark.parametrize(("importer", "imported", "why"), DIRECTIONS)
def test_dependencies_run_one_way(
    imports: list[Import], importer: str, imported: str, why: str
) -> None:
    # The whole package, routes included.
    wrong = [
        i
        for i in imports
        if package_of(i.importer) == importer and package_of(i.imported) == imported
    ]
    assert not wrong, f"{why}, not back:\n" + "\n".join(f"  {i}" for i in wrong)


def test_webhooks_import_no_domain(imports: list[Import]) -> None:
    """Anything may emit to webhooks, so webhooks (below its routes) may import no domain."""
    domains = _domains() - {"xiaopu.webhooks"}
    wrong = [
        i
        for i in imports
        if package_of(i.importer) == "xiaopu.webhooks"
        and not in_http_layer(i.importer)
        and package_of(i.imported) in domains
    ]
    assert not wrong, "anything → webhooks, not back:\n" + "\n".join(f"  {i}" for i in wrong)


def test_ledger_imports_no_domain(imports: list[Import]) -> None:
    """The ledger is the bottom of the money: it only records what others decide."""
    domains = _domains() - {"xiaopu.ledger"}
    wrong = [
        i
        for i in imports
        if package_of(i.importer) == "xiaopu.ledger" and package_of(i.imported) in domains
    ]
    assert not wrong, "… → ledger, not back:\n" + "\n".join(f"  {i}" for i in wrong)


def test_domains_never_import_what_composes_them(imports: list[Import]) -> None:
    """The job registry (xiaopu.jobs) imports the domains' job modules; a job module takes
    JobContext from xiaopu.queue. Likewise nothing in a domain imports the app, the worker, the
    CLI or the seed data."""
    domains = _domains()
    wrong = [i for i in imports if package_of(i.importer) in domains and i.imported in COMPOSERS]
    assert not wrong, (
        "A domain module imports what composes the domains (job handlers take JobContext from "
        "xiaopu.queue):\n" + "\n".join(f"  {i}" for i in wrong)
    )


def test_the_checks_find_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    """The reader sees imports inside functions and under TYPE_CHECKING, and the message names
    each import of the cycle."""
    pkg = tmp_path / "src" / "demo"
    for folder in ("a", "b", "c"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "service.py").write_text("from demo.b import service\n")
    (pkg / "b" / "service.py").write_text(
        "def later() -> None:\n    from ..c.service import x  # noqa\n"
    )
    (pkg / "c" / "service.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.a.service\nx = 1\n"
    )
    found = read_imports(tmp_path / "src", "demo")
    cycle = find_cycle(graph(found, by_package=True))
    assert cycle is not None
    message = describe(cycle, by_package=True)
    assert message.startswith("import cycle demo.a → demo.b → demo.c → demo.a:"), message
    assert "demo.b.service imports demo.c.service (src/demo/b/service.py:2)" in message
    assert "demo.c.service imports demo.a.service (src/demo/c/service.py:3)" in message
    # Without the lazy import there is none.
    (pkg / "b" / "service.py").write_text("def later() -> None:\n    pass\n")
    assert find_cycle(graph(read_imports(tmp_path / "src", "demo"), by_package=True)) is None

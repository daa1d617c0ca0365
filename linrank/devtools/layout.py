"""Check the package layout: import graph without cycles, declared layers, applications that do
not import each other, module sizes, no private names across modules.

Run:  python -m linrank.devtools.layout   (exit status 1 and a list of violations if any)

The import graph has an edge a -> b for every ``from .x import ...``, ``from ..x import ...``,
``from . import x``, ``from linrank.x import ...`` and ``import linrank.x`` statement in module a,
wherever it stands (inside functions too: a lazy import is still a dependency). Only explicit
statements count, not the implicit import of parent packages. tests/test_layout.py runs the same
checks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MAX_LINES",
    "LINE_LIMIT_EXEMPT",
    "CORE_LAYERS",
    "PACKAGE_LAYERS",
    "EXPERIMENTS",
    "SHARED",
    "APPLICATIONS",
    "FACADES",
    "application_of",
    "ImportEdge",
    "Layout",
    "scan",
    "find_cycle",
    "violations",
    "main",
]

#: Largest module size in lines (the developers' guide: "modules under ~600 lines").
MAX_LINES = 600

#: Modules allowed above MAX_LINES, with the reason (none today).
LINE_LIMIT_EXEMPT: dict[str, str] = {}

#: The geometric core, lowest layer first: each module may import only modules listed before it
#: (among linrank's modules).
CORE_LAYERS: tuple[str, ...] = (
    "linrank.linalg",
    "linrank.factorgrad",
    "linrank.fixedrank",
    "linrank.retractions",
    "linrank.metric",
    "linrank.divided_differences",
    "linrank.connection",
    "linrank.manifold",
)

#: Packages above the core, each with the linrank modules its modules may import besides its own
#: (the problems a user builds sit on the manifold; the flows take them through their adapter
#: linrank.flows.problem_data, and nothing of the problems imports the flows or the applications).
PACKAGE_LAYERS: dict[str, tuple[str, ...]] = {
    "linrank.problems": CORE_LAYERS + ("linrank.data",),
}
#: The package of the applications, and the package of the pieces they share.
EXPERIMENTS = "linrank.experiments"
SHARED = "linrank.experiments.shared"

#: The applications (packages below EXPERIMENTS); each may import the core and SHARED, never
#: another application. ``linrank.commands.<name>`` is the command line of application <name>.
APPLICATIONS: tuple[str, ...] = ("reproduce", "compare", "sweep", "search")

#: Modules that stand above every application and may import any of them (re-exports and the
#: deprecated old module paths).
FACADES: tuple[str, ...] = ("linrank", "linrank.experiments", "linrank.experiments.deprecated",
                            "linrank.cli")


def application_of(module: str) -> str | None:
    """The application a module belongs to (``linrank.experiments.<app>...`` or
    ``linrank.commands.<app>``), else None."""
    for app in APPLICATIONS:
        for pkg in (f"{EXPERIMENTS}.{app}", f"linrank.commands.{app}"):
            if module == pkg or module.startswith(pkg + "."):
                return app
    return None


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _application_violation(e: ImportEdge) -> str | None:
    """The layering on top of the core: None if the import ``e`` is allowed."""
    if e.source in FACADES or _in(e.source, "linrank.devtools"):
        return None
    src, dst = application_of(e.source), application_of(e.target)
    if src is not None and dst is not None and dst != src:
        return (f"{e.source}:{e.line}: application {src} imports application {dst} ({e.target}); "
                f"what both use belongs in {SHARED}")
    if e.target == EXPERIMENTS:  # its __init__ imports the reproduction: name what you use
        return f"{e.source}:{e.line}: imports {EXPERIMENTS} (import the application or {SHARED})"
    if src is None and dst is not None:
        where = SHARED if _in(e.source, SHARED) else "the core or a core tool"
        return f"{e.source}:{e.line}: {where} imports application {dst} ({e.target})"
    if src is None and not _in(e.source, EXPERIMENTS) and not _in(e.source, "linrank.commands") \
            and _in(e.target, EXPERIMENTS):
        return f"{e.source}:{e.line}: core module imports {e.target} (the applications sit on top)"
    return None


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of a linrank module: ``source`` imports ``names`` from ``target``."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int


@dataclass
class Layout:
    """The scanned package: module names, their line counts and import edges."""

    root: Path
    lines: dict[str, int] = field(default_factory=dict)
    edges: list[ImportEdge] = field(default_factory=list)

    def graph(self) -> dict[str, set[str]]:
        """Adjacency sets ``module -> {imported modules}`` (self-imports dropped)."""
        g: dict[str, set[str]] = {name: set() for name in self.lines}
        for e in self.edges:
            if e.target != e.source:
                g.setdefault(e.source, set()).add(e.target)
        return g


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute module name of a (possibly relative) ``from`` import in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def scan(root: Path | None = None) -> Layout:
    """Parse every ``*.py`` file of the package at ``root`` (default: linrank's directory)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    top = root.name
    layout = Layout(root)
    files = sorted(root.rglob("*.py"))
    for path in files:
        layout.lines[_module_name(path, root)] = len(path.read_text().splitlines())
    modules = set(layout.lines)
    for path in files:
        name = _module_name(path, root)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node.level, node.module)
                if not (target == top or target.startswith(top + ".")):
                    continue
                imported = tuple(a.name for a in node.names)
                # `from . import x` / `from .pkg import mod`: x may be a submodule
                subs = [f"{target}.{n}" for n in imported if f"{target}.{n}" in modules]
                rest = tuple(n for n in imported if f"{target}.{n}" not in modules)
                for sub in subs:
                    layout.edges.append(ImportEdge(name, sub, (), node.lineno))
                if rest or not subs:
                    layout.edges.append(ImportEdge(name, target, rest, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == top or alias.name.startswith(top + "."):
                        layout.edges.append(ImportEdge(name, alias.name, (), node.lineno))
    return layout


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle ``[a, b, ..., a]`` of the directed graph, or None (iterative depth-first search)."""
    color: dict[str, int] = {}
    for start in sorted(graph):
        if color.get(start):
            continue
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        path = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
                continue
            c = color.get(nxt, 0)
            if c == 1:
                return path[path.index(nxt) :] + [nxt]
            if c == 0:
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return None


def violations(layout: Layout, exempt: dict[str, str] | None = None) -> list[str]:
    """Every violation of the layout rules, one line each (empty list: the layout is clean).

    * an import cycle among linrank's modules;
    * a core module (:data:`CORE_LAYERS`) importing a linrank module that is not below it;
    * a module of a package of :data:`PACKAGE_LAYERS` importing a linrank module outside that
      package and not listed with it;
    * an application (:data:`APPLICATIONS`, in ``experiments/<app>/`` or ``commands/<app>.py``)
      importing another application; :data:`SHARED` importing an application; a module that is
      neither an application, a command nor a facade (:data:`FACADES`) importing the
      experiments;
    * a module above :data:`MAX_LINES` lines (unless in ``exempt``, default
      :data:`LINE_LIMIT_EXEMPT`);
    * ``from <linrank module> import _name`` in another module (private names stay private).
    """
    exempt = LINE_LIMIT_EXEMPT if exempt is None else exempt
    out = []
    cycle = find_cycle(layout.graph())
    if cycle:
        out.append("import cycle: " + " -> ".join(cycle))
    for e in layout.edges:
        if e.source in CORE_LAYERS:
            allowed = CORE_LAYERS[: CORE_LAYERS.index(e.source)]
            if e.target not in allowed:
                out.append(
                    f"{e.source}:{e.line}: core layer imports {e.target} (allowed: "
                    f"{', '.join(allowed) or 'no linrank module'})"
                )
        for package, allowed in PACKAGE_LAYERS.items():
            source_in, target_in = (
                name == package or name.startswith(package + ".") for name in (e.source, e.target)
            )
            if source_in and not target_in and e.target not in allowed:
                out.append(
                    f"{e.source}:{e.line}: {package} imports {e.target} (allowed: its own modules, "
                    f"{', '.join(allowed)})"
                )
        bad = _application_violation(e)
        if bad:
            out.append(bad)
        private = [n for n in e.names if n.startswith("_") and not n.startswith("__")]
        if private and e.target != e.source:
            out.append(
                f"{e.source}:{e.line}: imports private name(s) {', '.join(private)} from {e.target}"
            )
    for name, count in sorted(layout.lines.items()):
        if count > MAX_LINES and name not in exempt:
            out.append(f"{name}: {count} lines > {MAX_LINES}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the layers, module sizes and violations; exit status 1 if there are violations."""
    layout = scan()
    graph = layout.graph()
    print("core layers (lowest first): " + " -> ".join(CORE_LAYERS))
    for package, allowed in PACKAGE_LAYERS.items():
        print(f"{package} (above the core) may import: {', '.join(allowed)}")
    print(f"applications (import the core and {SHARED}, never each other): "
          + ", ".join(f"{EXPERIMENTS}.{a}" for a in APPLICATIONS))
    for name in sorted(graph):
        deps = ", ".join(sorted(graph[name])) or "-"
        print(f"  {name} ({layout.lines[name]} lines): {deps}")
    for name, why in LINE_LIMIT_EXEMPT.items():
        print(f"exempt from the {MAX_LINES}-line limit for now: {name} ({why})")
    bad = violations(layout)
    for line in bad:
        print("VIOLATION " + line)
    print("layout OK" if not bad else f"{len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

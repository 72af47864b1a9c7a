"""The import graph between listener's packages, and the layering rules it must keep.

    python scripts/imports.py [PACKAGE_DIR]      (default: the listener package next to here)

Reads every module with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks count:
they are dependencies too), prints one line per part (``part -> parts it imports``), then the
rules and any break of them; exits 1 when a rule is broken. tests/test_imports.py runs it.

Parts: a stage or layer package (``sources``, ``cli``, ...) or a top-level module; the service
package is shown module by module, because its rule is about siblings. Rules:
1. Nothing imports upward: a part imports only parts of a lower layer (or its own part).
2. Stages never import each other: detection gets series handed to it, alerting never reads
   the database; what two stages share lives in a lower layer (``models``, ...).
3. Service modules do not import each other sideways, except along the one composition:
   ``cycle`` runs ``poll``, ``alert`` and ``deliver``; ``poll`` hands bodies to ``parse`` (its
   CPU half, apart so that worker processes import only parsing); ``alert`` replays history
   through ``detect`` (the replay ``listener backtest`` runs too).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

# lowest first; a part may import its own layer only where a rule below allows it
LAYERS: list[tuple[str, frozenset[str]]] = [
    (
        "base",
        frozenset(
            {"listener", "errors", "models", "heap", "simhash", "untrusted", "worker", "workers"}
        ),
    ),
    ("settings", frozenset({"config", "log"})),
    (
        "stages",
        frozenset({"sources", "matching", "enrichment", "storage", "detection", "alerting"}),
    ),
    ("wiring", frozenset({"checks"})),  # configuration -> stage objects (queries, routes)
    ("service", frozenset({"service", "demo"})),
    ("daemon", frozenset({"daemon"})),
    ("cli", frozenset({"cli"})),
    ("entry", frozenset({"__main__"})),  # python -m listener
]
SIDEWAYS_ALLOWED = {  # service module -> the siblings it may import (see rule 3)
    "service.cycle": {"service.poll", "service.alert", "service.deliver"},
    "service.poll": {"service.parse"},
    "service.alert": {"service.detect"},
}
SAME_LAYER_OK = {"base", "settings"}  # e.g. log -> untrusted is the layer below; config -> log


def part_of(module: str) -> str:
    """``listener.service.poll`` -> ``service.poll``; ``listener.sources.feed`` -> ``sources``."""
    names = module.split(".")[1:]
    if not names:
        return "listener"
    if names[0] == "service" and len(names) > 1:
        return f"service.{names[1]}"
    return names[0]


def layer_of(part: str) -> str | None:
    top = part.split(".")[0]
    for name, members in LAYERS:
        if top in members:
            return name
    return None


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    names = list(relative.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def is_module(name: str, root: Path) -> bool:
    """Whether ``listener.a.b`` is a module or package under ``root`` (not an attribute)."""
    relative = Path(*name.split(".")[1:])
    return (root / relative).with_suffix(".py").exists() or (root / relative).is_dir()


def imports_of(path: Path, module: str, root: Path) -> set[str]:
    """The listener modules ``path`` imports, absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from listener.service import cycle` imports a module
                name = f"{base}.{alias.name}"
                found.add(name if is_module(name, root) else base)
    return {name for name in found if name == "listener" or name.startswith("listener.")}


def graph(root: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source = part_of(module)
        edges[source]  # every part is listed, even one that imports nothing
        for target in imports_of(path, module, root):
            if part_of(target) != source:
                edges[source].add(part_of(target))
    return edges


def breaks(edges: dict[str, set[str]]) -> list[str]:
    rank = {name: index for index, (name, _) in enumerate(LAYERS)}
    out = []
    for source, targets in sorted(edges.items()):
        layer = layer_of(source)
        if layer is None:
            out.append(f"{source}: in no layer; add it to LAYERS in scripts/imports.py")
            continue
        for target in sorted(targets):
            other = layer_of(target)
            if other is None:
                continue  # reported as a source of its own
            if rank[other] > rank[layer]:
                out.append(f"{source} -> {target}: imports upward ({layer} -> {other})")
            elif rank[other] == rank[layer] and layer == "stages":
                out.append(f"{source} -> {target}: a stage imports another stage")
            elif (
                rank[other] == rank[layer]
                and source.startswith("service.")
                and target.startswith("service.")
                and target not in SIDEWAYS_ALLOWED.get(source, set())
            ):
                out.append(f"{source} -> {target}: a service module imports a sibling sideways")
            elif rank[other] == rank[layer] and layer not in SAME_LAYER_OK | {"service"}:
                out.append(f"{source} -> {target}: imports within the {layer} layer")
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "listener"
    edges = graph(root)
    order = {name: index for index, (name, _) in enumerate(LAYERS)}
    for source in sorted(edges, key=lambda p: (order.get(layer_of(p) or "", 99), p)):
        targets = ", ".join(sorted(edges[source])) or "-"
        print(f"[{layer_of(source) or '?'}] {source} -> {targets}")
    found = breaks(edges)
    print()
    print("rules: nothing imports upward; stages never import each other; service modules")
    print("       import siblings only along cycle -> poll (-> parse), alert (-> detect), deliver")
    for line in found:
        print(f"BROKEN: {line}")
    print(f"{len(found)} broken" if found else "all rules kept")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

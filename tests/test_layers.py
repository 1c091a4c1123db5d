"""The import graph of `earthgen_cli` follows the layer order of ../shared/DESIGN.md (issue 13):

    cli > api > evaluate > {train, inference} > {checkpoint, claims} > flow > models > data > io
        > modalities, errors, text (and the other small top-level modules)

A module may import only modules of a lower layer or of its own package. Two rules more:
- `train` and `inference` share a layer but are siblings: neither imports the other; so do
  `checkpoint` and `claims` (the claim rule, which evaluate writes with and inference reads with).
- The bottom layer's modules (modalities, errors, text, strict_config, ...) may import each other.

Both module-level imports and imports inside functions count for the layer order (a lazy import
from a higher layer is still a dependency on it). Import cycles between files (strongly connected
components of the file graph) are checked on module-level imports only: counting function-level
imports as well makes one large component today (the lazy API facade in `earthgen_cli/__init__.py`,
`io.geotiff_writer` reading `__version__`, inference's lazy model loading), which is not a load-order
cycle. Two files importing each other directly is refused at any level
(`test_no_two_files_import_each_other`).

The test walks the source with `ast`; it imports nothing from the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "earthgen_cli"

# Layer of each package / top-level module under earthgen_cli (higher imports lower).
LAYERS = {
    "__main__": 10,  # `python -m earthgen_cli`: the entry point, above cli
    "cli": 9,
    "api": 8,
    "evaluate": 7,
    "train": 6,
    "inference": 6,
    "checkpoint": 5,
    "claims": 5,  # the claim rule: evaluate judges reports with it, inference the default model's card
    "flow": 4,
    "models": 3,
    "data": 2,
    "io": 1,
    # the bottom layer: registry, user-facing errors, the offline text encoder, the config parser, seeds
    "modalities": 0,
    "errors": 0,
    "text": 0,
    "strict_config": 0,
    "seeds": 0,  # seeds derived from key parts by hashing (noise cells, training steps, splits)
    "__init__": 0,  # earthgen_cli/__init__.py: only __version__
}
BOTTOM = 0

# The only imports allowed against the order, each with its reason.
ALLOWED = {
    # `earthgen_cli.translate` etc.: the package's __getattr__ re-exports the API on first use, so
    # `from earthgen_cli import __version__` (bottom layer) stays free of it.
    ("earthgen_cli", "earthgen_cli.api"): "lazy re-export in earthgen_cli/__init__.py:__getattr__",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def unit(module: str) -> str:
    """The package (or top-level module) under earthgen_cli a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The file module that `target` names (a module or a name inside one), or None if outside."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of an earthgen_cli module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = this.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in child.names]
            targets = {resolve(n, modules) for n in names if n == "earthgen_cli" or n.startswith("earthgen_cli.")}
            found.extend((t, child.lineno, top) for t in sorted(targets - {None, this}))
            visit(child, inner)

    visit(tree, True)
    return found


def graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int, bool]]]]:
    modules = package_modules()
    return modules, {m: imports(p, modules) for m, p in modules.items()}


def layer_violations() -> list[tuple[str, str, str]]:
    """(importer, imported, description) for every import against the layer order."""
    modules, edges = graph()
    out = []
    for src, targets in edges.items():
        for dst, line, top in targets:
            a, b = unit(src), unit(dst)
            if a == b or (LAYERS[a] == LAYERS[b] == BOTTOM) or ((src, dst) in ALLOWED and not top):
                continue
            if LAYERS[b] >= LAYERS[a]:
                where = "" if top else " (in a function)"
                text = f"{modules[src].relative_to(PACKAGE.parent)}:{line} {src} [{a}] imports {dst} [{b}]{where}"
                out.append((src, dst, text))
    return sorted(set(out))


def cycles() -> list[list[str]]:
    """Strongly connected components (Tarjan) of the module-level import graph, of size > 1."""
    _, edges = graph()
    succ = {m: sorted({d for d, _, top in t if top}) for m, t in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(succ):
        if v not in index:
            strong(v)
    return sorted(comps)


def test_every_module_has_a_layer():
    missing = sorted({unit(m) for m in package_modules()} - set(LAYERS))
    assert not missing, f"add these to LAYERS in {Path(__file__).name}: {missing}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = [text for _, _, text in layer_violations()]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles_between_files():
    found = cycles()
    assert not found, "import cycles (module-level imports):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_two_files_import_each_other():
    # function-level imports count here: a lazy import back is still a two-way dependency
    _, edges = graph()
    succ = {m: {d for d, _, _ in t} for m, t in edges.items()}
    bad = sorted(f"{a} <-> {b}" for a in succ for b in succ[a] if a < b and a in succ[b])
    assert not bad, "files that import each other:\n" + "\n".join(bad)


def test_the_walker_sees_imports():
    # a guard against a walker that finds nothing and so passes everything
    _, edges = graph()
    assert sum(len(t) for t in edges.values()) > 100
    assert any(not top for t in edges.values() for _, _, top in t)


# The raster, geometry and array-store libraries: io/ is the only layer that touches files.
IO_LIBRARIES = {"rasterio", "pyproj", "zarr", "rioxarray", "xarray", "dask", "shapely", "numcodecs", "affine"}


def test_raster_and_store_libraries_are_imported_in_io_only():
    """rasterio, pyproj, zarr, xarray and friends are imported under `earthgen_cli/io/` only (at any
    level, lazy imports included): reading, warping and writing files is io's job (issue 13)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "io":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {n}"
                      for n in names if n.split(".")[0] in IO_LIBRARIES]
    assert not found, "\n".join(found)

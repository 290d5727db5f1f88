"""The package's import graph, read from the source with ast (module-level and function-level imports alike):
no two files may import each other, directly or round a loop. Issue 17 measured a five-file cycle through
the old blursynth/cli.py and a two-file one between render/__init__ and render/exact."""
from __future__ import annotations

import ast
from pathlib import Path

import blursynth

ROOT = Path(blursynth.__file__).parent


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _from_imports(mods: dict[str, Path]):
    """(module, its package, the ImportFrom node, the absolute target) for every `from ... import` in `mods`."""
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield mod, package, node, target


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports (a `from X import name` counts X, and X.name where that is a
    module)."""
    mods = _modules(root)
    graph = {m: set() for m in mods}
    for mod, _, node, target in _from_imports(mods):
        names = [target] + [f"{target}.{a.name}" for a in node.names]
        graph[mod].update(n for n in names if n in mods and n != mod)
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[mod].update(a.name for a in node.names if a.name in mods and a.name != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `pkg` with a subpackage `sub`, holding `files` (path relative to pkg -> source)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for rel, text in {"__init__.py": "", "sub/__init__.py": "", **files}.items():
        (pkg / rel).write_text(text)
    return pkg


def test_cycle_finder_finds_a_written_cycle(tmp_path):
    pkg = _package(tmp_path, {"a.py": "from .sub import b\n", "sub/b.py": "def f():\n    from ..c import x\n",
                              "c.py": "from pkg import a\nx = 1\n", "d.py": "from . import c\n"})
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_no_import_cycle_between_files():
    assert cycles(import_graph()) == []


def test_the_command_layer_is_imported_by_nothing_outside_it():
    """ARCHITECTURE.md: blursynth/commands/ sits on top; `python -m blursynth` (__main__) runs its group, and no
    stage, store or runner module imports anything from it."""
    graph = import_graph()
    layer = {m for m in graph if m == "blursynth.commands" or m.startswith("blursynth.commands.")}
    assert {"blursynth.commands", "blursynth.commands.options", "blursynth.commands.generate"} <= layer
    back = sorted(m for m, deps in graph.items() if deps & layer and m not in layer and m != "blursynth.__main__")
    assert back == [], f"{back} import the command layer"


def private_imports(root: Path = ROOT) -> list[str]:
    """`from X import _name` where X is outside the importing file's own package ("pkg.mod:line X._name")."""
    mods = _modules(root)
    out = []
    for mod, package, node, target in _from_imports(mods):
        owner = target if target in mods and mods[target].name == "__init__.py" else target.rpartition(".")[0]
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__") and owner != package:
                out.append(f"{mod}:{node.lineno} {target}.{alias.name}")
    return out


def test_private_import_finder_finds_a_written_one(tmp_path):
    pkg = _package(tmp_path, {"a.py": "_x = 1\ndef f():\n    from .sub.b import _y\n",
                              "sub/b.py": "from ..a import _x\n_y = 2\n",
                              "sub/c.py": "from .b import _y\n"})  # sub/c from sub/b: the same package, allowed
    assert sorted(private_imports(pkg)) == ["pkg.a:3 pkg.sub.b._y", "pkg.sub.b:1 pkg.a._x"]


def test_no_imports_of_another_packages_private_names():
    assert private_imports() == []


def external_importers(name: str, root: Path = ROOT) -> list[str]:
    """The package's files that import the top-level package ``name`` (import X, import X.y, from X[.y] import ...),
    at module level or inside a function."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                hit = any(a.name.split(".")[0] == name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                hit = node.level == 0 and (node.module or "").split(".")[0] == name
            else:
                continue
            if hit:
                out.append(str(path.relative_to(root.parent)))
                break
    return out


def test_importer_finder_sees_function_level_and_dotted_imports(tmp_path):
    pkg = _package(tmp_path, {"a.py": "def f():\n    import ray.util\n", "sub/b.py": "from ray import remote\n",
                              "c.py": "import rayon\nfrom . import a\n"})
    assert external_importers("ray", pkg) == ["pkg/a.py", "pkg/sub/b.py"]


def test_ray_and_click_stay_in_their_layers():
    """ARCHITECTURE.md: Ray is the runner's alone; click belongs to the command modules (issue 17 allows Ray in at
    most 3 files; today it is 1)."""
    assert external_importers("ray") == ["blursynth/runner.py"]
    click_files = set(external_importers("click"))
    assert click_files and all(f.startswith("blursynth/commands/") for f in click_files), sorted(click_files)
    assert "blursynth/commands/options.py" in click_files


def test_no_file_grows_past_700_lines():
    """Issue 17: no file in blursynth/ over 700 lines (render/exact.py, video/blur.py, runner.py and cuda.py were
    split along their seams)."""
    long = sorted(str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")
                  if len(p.read_text().splitlines()) > 700)
    assert long == [], long


def test_the_command_group_loads_no_heavy_library_it_does_not_need():
    # every command, --help included, pays for what `import blursynth.commands` loads: scipy.ndimage (with
    # numpy.f2py, ~0.35 s) and torch (seconds) load inside the stages that use them
    import subprocess
    import sys

    code = ("import sys, blursynth.commands; "
            "print(sorted(m for m in ('scipy.ndimage', 'numpy.f2py', 'torch', 'h5py', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

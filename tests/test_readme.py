"""The README stays true: its Python API example runs, and the recipes and paths it names exist.

The example is the ```python block after the ``<!-- test: python-api -->`` marker. It runs as
a user would run it: a fresh interpreter, started in an empty folder (so the run lands under
``tmp_path`` and nothing may depend on the repository being the working directory).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.idx import fashion_mnist_available

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
RECIPES = ROOT / "tasks" / "configs"
MARKER = "<!-- test: python-api -->"
TASK_NAMES = sorted(p.name for p in RECIPES.iterdir() if p.is_dir())


def tagged_block(text: str, marker: str) -> str:
    """The body of the first fenced ```python block after ``marker``."""
    start = text.find(marker)
    assert start >= 0, f"README.md has no {marker} line"
    m = re.compile(r"```python\n(.*?)\n```", re.S).search(text, start)
    assert m is not None, f"no ```python block after {marker}"
    between = text[start + len(marker):m.start()]
    assert not between.strip(), f"text between {marker} and its ```python block: {between.strip()[:80]!r}"
    return m.group(1)


def test_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tagged_block(README.read_text(), MARKER)
    if not fashion_mnist_available():
        # The example trains on the embedded Fashion-MNIST; without the Debian package, run the
        # same code on scikit-learn's digits (the fallback `make demo` uses) instead of skipping.
        assert "overrides={" in code, "the example must pass overrides={...} for the digits fallback"
        code = code.replace("overrides={", 'overrides={"data.dataset": "digits", ', 1)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"README example failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "true:" in proc.stdout and "predicted:" in proc.stdout, proc.stdout
    runs = list((tmp_path / "runs" / "classification").iterdir())
    assert len(runs) == 1, runs
    for name in ("run.json", "config.yaml", "eval.json", "checkpoints/best.pt"):
        assert (runs[0] / name).is_file(), f"{name} missing from {runs[0]}"


def _recipe_exists(task: str, name: str) -> bool:
    return (RECIPES / task / f"{name}.yaml").is_file()


@pytest.mark.parametrize("doc", [README, RESULTS], ids=lambda p: p.name)
def test_config_names_are_shipped_recipes(doc: Path) -> None:
    """``rsuite train TASK ... --config NAME`` and ``-m tasks.TASK.train --config NAME`` name real recipes."""
    text = doc.read_text()
    pattern = re.compile(r"(?:rsuite train |-m tasks\.)(\w+)(?:\.train)?[^\n`]*?--config[ =]([\w./-]+)")
    found = pattern.findall(text)
    bad = []
    for task, name in found:
        if name.endswith((".yaml", ".yml")):
            bad += [] if (ROOT / name).is_file() else [f"{task}: {name} (no such file)"]
        elif task not in TASK_NAMES or not _recipe_exists(task, name):
            bad.append(f"{task} --config {name}")
    assert not bad, f"{doc.name} names recipes that are not shipped: {bad}"
    if doc is README:
        assert found, "README.md shows no `rsuite train ... --config NAME` example"


def test_task_table_recipes_exist() -> None:
    """The Tasks table's recipe column (`_plain20` is shorthand for the previous name's prefix)."""
    heads = [(re.match(r"\| `(\w+)` \|", line), line) for line in README.read_text().splitlines()]
    rows = [line for m, line in heads if m and m.group(1) in TASK_NAMES]
    tasks_in_table = [re.match(r"\| `(\w+)` \|", row).group(1) for row in rows]
    assert sorted(tasks_in_table) == TASK_NAMES, tasks_in_table
    bad = []
    for task, row in zip(tasks_in_table, rows):
        full = ""
        for token in re.findall(r"`([\w.]+)`", row.rstrip(" |").rsplit("|", 1)[1]):
            if token.startswith("_"):
                token = full.rsplit("_", 1)[0] + token
            full = token
            if not _recipe_exists(task, token):
                bad.append(f"{task}: {token}")
    assert not bad, f"README.md's task table names recipes that are not shipped: {bad}"


def _repo_paths(text: str) -> list[str]:
    """Backticked tokens that look like repository paths: `tasks/api.py`, `benchmarks/...`, `tests/...`."""
    tokens = re.findall(r"`((?:tasks|backbones|benchmarks|tests)/[^`\s]*)`", text)
    return [t for t in tokens if not re.search(r"[<>*{}]|\.\.\.|…", t)]


@pytest.mark.parametrize("doc", [README, RESULTS], ids=lambda p: p.name)
def test_paths_and_links_exist(doc: Path) -> None:
    text = doc.read_text()
    paths = _repo_paths(text)
    missing = [p for p in paths if not (ROOT / p.split("::")[0]).exists()]
    for target in re.findall(r"\]\(([^)\s]+)\)", text):  # Markdown links and images, relative to the doc
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            missing.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
            missing.append(target)
    assert not missing, f"{doc.name} names paths or links that do not exist: {missing}"
    if doc is README:
        assert paths, "README.md names no repository paths (did the check's pattern break?)"


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}

"""The package as a user installs it: build the wheel, install it outside the repository, train.

The fresh virtual environment reuses the project venv's installed dependencies (torch and
friends) through a ``.pth`` line, but not its editable install: ``.pth`` files are only read in
site directories, so the project's editable finder never runs there and ``tasks`` can only
come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_wheel_ships_recipes_and_trains_outside_the_repo(tmp_path) -> None:
    # build from a clean copy: setuptools' build/ folder would otherwise carry stale modules into the wheel
    source = tmp_path / "source"
    for name in ("backbones", "tasks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], cwd=tmp_path)
    wheel = next(dist.glob("residual_suite-*.whl"))
    recipes = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("tasks/configs/") and n.endswith(".yaml")]
    shipped = list((ROOT / "tasks" / "configs").glob("*/*.yaml"))
    assert len(recipes) == len(shipped) > 0

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    site = Path(subprocess.check_output(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
          str(wheel)], cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMP_WAIT_POLICY")}
    where = _run([str(venv / "bin" / "python"), "-c", "import tasks, os; print(tasks.__file__); "
                  "print(os.environ['OMP_WAIT_POLICY'])"], cwd=work, env=env).stdout.split()
    assert where[0].startswith(str(site)), where  # the wheel's copy, not the repository's
    assert where[1] == "PASSIVE"  # threading defaults come with the package
    done = _run([str(venv / "bin" / "rsuite"), "train", "classification", "data.dataset=digits", "data.hflip=false",
                 "data.limit_train=128", "data.limit_val=64", "trainer.max_steps=2", "trainer.progress=false",
                 "trainer.threads=1"], cwd=work, env=env)
    run_dir = work / done.stdout.strip().splitlines()[-1]
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert (run_dir / "run.json").is_file()

"""The bad-file policy (skip unreadable files with a counted warning, or fail with data.strict=true),
and file-system errors named in one line."""

from __future__ import annotations

import errno
import json

import pytest
from PIL import Image

import tasks
from tasks.core.errors import UserError
from tasks.core.unreadable import SkipUnreadable


def _image_folder(root, bad: bool = True) -> None:
    for split in ("train", "val"):
        for label, colour in (("a", (200, 20, 20)), ("b", (20, 20, 200))):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (20, 20), colour).save(folder / f"{i}.png")
    if bad:
        (root / "train" / "a" / "zero.png").write_bytes(b"")
        good = (root / "train" / "b" / "0.png").read_bytes()
        Image.new("RGB", (20, 20)).save(root / "train" / "b" / "cut.jpg")
        (root / "train" / "b" / "cut.jpg").write_bytes((root / "train" / "b" / "cut.jpg").read_bytes()[:40])
        assert good


def _settings(tmp_path, *extra: str) -> list[str]:
    return ["data.dataset=imagefolder", f"data.root={tmp_path / 'data'}", "data.image_size=16", "data.batch_size=4",
            "backbone.name=resnet18", "backbone.options.width=0.125", "trainer.max_steps=6", "trainer.eval_every=6",
            "trainer.progress=false", "trainer.threads=1", f"trainer.runs_dir={tmp_path / 'runs'}", *extra]


def test_unreadable_images_are_skipped_with_a_counted_warning(tmp_path, capsys) -> None:
    _image_folder(tmp_path / "data")
    run = tasks.train("classification", _settings(tmp_path, "trainer.run_name=skip"))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipped unreadable")]
    assert {w.split()[3] for w in warnings} == {str(tmp_path / "data/train/a/zero.png"),
                                                str(tmp_path / "data/train/b/cut.jpg")}
    assert "2 skipped in the training set so far" in warnings[-1]
    assert (run.dir / "checkpoints" / "best.pt").is_file()


def test_strict_makes_the_first_unreadable_file_an_error_and_leaves_no_folder(rsuite, tmp_path) -> None:
    _image_folder(tmp_path / "data")
    code, _, err = rsuite("train", "classification", *_settings(tmp_path, "trainer.run_name=strict",
                                                                 "data.strict=true"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cannot be read" in lines[0] and "data.strict=false" in lines[0]
    assert not (tmp_path / "runs" / "classification" / "strict").exists()


def test_a_dataset_of_nothing_readable_is_one_error() -> None:
    class Broken:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> None:
            raise OSError("cannot identify image file")

    with pytest.raises(UserError, match="3 samples in a row of the training set cannot be read"):
        SkipUnreadable(Broken(), "training")[0]


def test_disk_full_names_the_path_and_how_to_resume(rsuite, tmp_path, monkeypatch) -> None:
    _image_folder(tmp_path / "data", bad=False)

    def full(obj, path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("tasks.core.lifecycle.atomic_save", full)
    code, _, err = rsuite("train", "classification", *_settings(tmp_path, "trainer.run_name=full"))
    errors = [line for line in err.strip().splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1 and err.strip().endswith(errors[0]), err
    assert "No space left on device" in errors[0] and "last.pt" in errors[0] and "train again" in errors[0]
    assert not (tmp_path / "runs" / "classification" / "full").exists()


def test_evaluate_on_a_read_only_run_still_prints_metrics(rsuite, tmp_path, monkeypatch) -> None:
    _image_folder(tmp_path / "data", bad=False)
    run = tasks.train("classification", _settings(tmp_path, "trainer.run_name=ro")).dir
    (run / "confusion.png").unlink()
    monkeypatch.setattr("tasks.api.os.access", lambda path, mode: False)  # root ignores chmod, so pretend
    code, out, err = rsuite("evaluate", str(run), "--json")
    assert code == 0 and 0 <= json.loads(out.strip().splitlines()[-1])["top1"] <= 1
    assert "read-only" in err and not (run / "eval.json").exists() and not (run / "confusion.png").exists()

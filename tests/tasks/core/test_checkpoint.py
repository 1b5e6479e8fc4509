"""Atomic writes survive a crash mid-write; unsafe or foreign files are refused."""

import os
import pickle

import pytest
import torch

from tasks.core import checkpoint
from tasks.core.checkpoint import atomic_save, load_checkpoint, make_checkpoint
from tasks.core.errors import UserError


def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    atomic_save(make_checkpoint("classification", step=1, model={"w": torch.ones(3)}), path)

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(checkpoint.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(make_checkpoint("classification", step=2, model={"w": torch.zeros(3)}), path)
    monkeypatch.undo()
    ckpt = load_checkpoint(path, "classification")
    assert ckpt["step"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_not_run(tmp_path) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "task": "classification", "x": exploit}, f)
    with pytest.raises(UserError, match="not a safe residual-suite checkpoint"):
        load_checkpoint(path, "classification")
    assert not marker.exists()


def test_foreign_and_wrong_task_files_are_refused(tmp_path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(1)}, plain)
    with pytest.raises(UserError, match="not a residual-suite checkpoint"):
        load_checkpoint(plain)
    other = tmp_path / "other.pt"
    atomic_save(make_checkpoint("speech", step=0), other)
    with pytest.raises(UserError, match="written by task 'speech'"):
        load_checkpoint(other, "classification")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trips_through_weights_only(tmp_path) -> None:
    state = checkpoint.rng_state()
    path = atomic_save(make_checkpoint("x", rng=state), tmp_path / "r.pt")
    expected = torch.rand(3)
    checkpoint.set_rng_state(load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected)

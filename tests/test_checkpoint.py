"""Atomic checkpoint writes, safe loading, and RNG state round trips."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from vsslkit.train import checkpoint as ck


def _state(model: torch.nn.Module, step: int) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4])
    return ck.make_state(model=model, optimizer=opt, scheduler=sched, sampler_state={"epoch": 1, "position": 8},
                         epoch=1, step=step, config={"task": "pace", "lr": 0.1})


def test_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = ck.save_checkpoint(tmp_path / "sub" / "last.pt", _state(model, 5))
    loaded = ck.load_checkpoint(path)
    assert loaded["step"] == 5 and loaded["sampler"] == {"epoch": 1, "position": 8}
    assert loaded["config"] == {"task": "pace", "lr": 0.1} and loaded["vsslkit_version"]
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    assert loaded["optimizer"]["state"][0]["momentum_buffer"].shape == (2, 3)
    assert sorted(loaded["rng"]) >= ["numpy", "python", "torch"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp files left


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    path = ck.save_checkpoint(tmp_path / "last.pt", _state(model, 1))

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, _state(model, 2))
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class Evil:
    def __reduce__(self):
        return (print, ("unsafe code ran",))


def test_unsafe_or_missing_files_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"model": Evil()}, protocol=2))
    torch.save({"x": Evil()}, tmp_path / "evil2.pt")
    for path in (bad, tmp_path / "evil2.pt"):
        with pytest.raises(RuntimeError, match=str(path.name)):
            ck.load_checkpoint(path)
    assert "unsafe code ran" not in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="missing.pt: checkpoint not found"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip_reproduces_draws(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    ck.save_checkpoint(tmp_path / "rng.pt", {"rng": ck.rng_state()})
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.set_rng_state(ck.load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_unwrap_gives_stable_state_dict_keys():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    compiled = torch.compile(model)
    assert ck.unwrap(compiled) is model
    assert list(ck.make_state(model=compiled)["model"]) == ["0.weight", "0.bias"]


def test_background_saver_writes_the_state_as_it_was_when_saved(tmp_path):
    model = torch.nn.Linear(3, 2)
    saver = ck.BackgroundSaver()
    state = _state(model, 7)
    expected = model.weight.detach().clone()
    saver.save(tmp_path / "last.pt", state, keep_previous=True)
    with torch.no_grad():
        model.weight.add_(1.0)  # training goes on while the file is written
    saver.wait()
    loaded = ck.load_checkpoint(tmp_path / "last.pt")
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["weight"], expected)
    saver.save(tmp_path / "last.pt", _state(model, 8), keep_previous=True)
    saver.wait()
    assert ck.load_checkpoint(tmp_path / "last.pt")["step"] == 8
    assert ck.load_checkpoint(ck.previous_checkpoint(tmp_path / "last.pt"))["step"] == 7


def test_background_saver_raises_a_failed_write_later_and_never_masks_another_error(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    saver = ck.BackgroundSaver()
    saver.save(tmp_path / "last.pt", _state(model, 1))
    saver.wait()

    def broken_save(obj, f):
        raise OSError("disk gone")

    monkeypatch.setattr(torch, "save", broken_save)
    saver.save(tmp_path / "last.pt", _state(model, 2))
    with pytest.raises(OSError, match="disk gone"):
        saver.wait()  # the write's error, on the caller's thread
    saver.save(tmp_path / "last.pt", _state(model, 3))
    with pytest.raises(ValueError, match="training broke"):
        try:
            raise ValueError("training broke")
        finally:
            saver.close()  # the write failed too, but the error in flight is the one raised
    monkeypatch.undo()
    assert ck.load_checkpoint(tmp_path / "last.pt")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]

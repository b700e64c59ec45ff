"""Nothing loads code from a file it was handed: a pickle given as a scorer or a bound is refused unless the
user says, explicitly, that it may run code."""

from __future__ import annotations

import pickle

import pytest

from earlyexit.cli import main
from earlyexit.scoring import load_bound, load_scorer
from earlyexit.scoring._common import PickleRefused


class _WritesAFile:
    """Unpickling this calls ``open(target, "w")``: proof that the file's code ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def evil(tmp_path):
    target = tmp_path / "ran"
    path = tmp_path / "evil.joblib"
    path.write_bytes(pickle.dumps(_WritesAFile(target)))
    return path, target


def test_load_scorer_and_load_bound_refuse_a_pickle_without_running_it(evil):
    path, target = evil
    with pytest.raises(PickleRefused, match="would run any code inside it.*--allow-pickle"):
        load_scorer(path)
    with pytest.raises(PickleRefused, match="allow_pickle"):
        load_bound(path)
    assert not target.exists()


@pytest.mark.parametrize("command", [["replay", "studies/trec-wide24", "--scorer"], ["scorer", "info"]])
def test_commands_refuse_a_pickle_with_one_line_and_exit_2(evil, capsys, command):
    path, target = evil
    assert main([*command, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err and "Traceback" not in err
    assert not target.exists()


def test_a_spec_naming_a_pickled_scorer_is_refused_before_training(evil, tmp_path):
    from earlyexit.study import load_spec
    from earlyexit.study._runner import make_scorer
    from conftest import tiny_spec

    path, target = evil
    spec_text = tiny_spec("p", grid={"learning_rate": [1e-3]}, max_steps=4, steps=[0, 2],
                          pruner={"kind": "geometric", "scorer": str(path)})
    (tmp_path / "p.toml").write_text(spec_text)
    with pytest.raises(PickleRefused):
        make_scorer(load_spec(tmp_path / "p.toml"))
    assert not target.exists()


def test_with_the_explicit_flag_the_file_is_loaded_and_its_code_runs(evil):
    path, target = evil
    with pytest.raises(Exception):  # it is no scorer, but it was loaded: the flag does what it says
        load_scorer(path, allow_pickle=True)
    assert target.exists()

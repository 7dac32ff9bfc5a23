"""The sweep file: expansion of grids and random draws, and bad files refused with one line that
names the key (exit 2), before Ray starts and without writing the output folder."""

from __future__ import annotations

import pytest

from hgq_rtl.cli import main
from hgq_rtl.sweep.config import load_plan, parse_plan

GOOD = """
[data]
dataset = "digits"

[train]
epochs = 3
hidden = [8]

[space]
beta = [1e-6, {start = 1e-6, end = 1e-4}]
granularity = ["element", "tensor"]
learning_rate = {loguniform = [1e-3, 1e-2]}
seed = {randint = [0, 9]}

[budget]
samples = 2
seed = 7
"""


def test_grid_times_samples_with_seeded_draws(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(GOOD)
    plan = load_plan(path)
    assert len(plan.trials) == 2 * 2 * 2  # beta × granularity × samples
    assert [t.id for t in plan.trials] == [f"t{i:03d}" for i in range(8)]
    assert {t.config.granularity for t in plan.trials} == {"element", "tensor"}
    assert plan.trials[1].config.beta.end == 1e-4 or plan.trials[2].config.beta.end == 1e-4
    rates = [t.config.learning_rate for t in plan.trials]
    assert all(1e-3 <= r <= 1e-2 for r in rates) and len(set(rates)) == 8
    assert all(0 <= t.config.seed <= 9 for t in plan.trials)
    assert all(t.config.hidden == (8,) and t.config.epochs == 3 for t in plan.trials)
    # the same file draws the same trials
    assert load_plan(path).record() == plan.record()


BAD = [
    ("[data]\ndataset = 'digits'\n[trian]\nepochs = 2\n", "trian: unknown key"),
    ("[train]\nepochs = 2\n", "[data]: missing section"),
    ("[data]\ndataset = 'nope'\n", "data.dataset: unknown dataset 'nope'"),
    ("[data]\ndataset = 'digits'\n[space]\nlearning_rate = [-1.0]\n", "space.learning_rate"),
    ("[data]\ndataset = 'digits'\n[space]\nlr = [1e-3]\n", "space.lr: unknown key"),
    ("[data]\ndataset = 'digits'\n[space]\nhidden = [8, 16]\n", "space.hidden[0]: must be a list"),
    ("[data]\ndataset = 'digits'\n[space]\nseed = {uniform = [0, 3]}\n", "space.seed.uniform"),
    ("[data]\ndataset = 'digits'\n[space]\nbeta = [{start = 1e-6, ende = 1}]\n", "space.beta[0]"),
    ("[data]\ndataset = 'digits'\n[train]\nepochs = 0\n", "train.epochs"),
    ("[data]\ndataset = 'digits'\n[budget]\nworkers = 0\n", "budget.workers"),
    (
        "[data]\ndataset = 'digits'\n[budget.early_stopping]\nscheduler = 'hyperband'\n",
        "budget.early_stopping.scheduler",
    ),
    ("[data]\ndataset = 'digits'\n[build]\nrtl = false\nsynth = true\n", "build.synth"),
    ("[data]\ndataset = 'digits'\n[build]\nvectors = 'many'\n", "build.vectors: must be int"),
    ("[data]\ndataset = 'digits'\n[train]\nepochs = 2\n[space]\nepochs = [3]\n", "space.epochs"),
    ("[data\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_sweep_file_is_one_line_naming_the_key(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hgq-rtl: error: ") and expected in err[0], err[0]
    assert str(path) in err[0]
    assert not out.exists()


def test_missing_file_and_resume_without_sweep(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read the sweep file" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert main(["sweep", str(good), "--out", str(tmp_path / "o"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"hgq-rtl: error: nothing to resume: {tmp_path / 'o' / 'sweep.json'} does not exist"
    ]


def test_asha_grace_period_longer_than_the_trials_is_refused():
    document = {
        "data": {"dataset": "digits"},
        "train": {"epochs": 2},
        "budget": {"early_stopping": {"grace_period": 3}},
    }
    with pytest.raises(ValueError, match="budget.early_stopping.grace_period"):
        parse_plan(document)


def test_cnn_trials_take_the_cnn_defaults_the_file_does_not_give():
    from hgq_rtl.train.config import CNN_DEFAULTS

    document = {
        "data": {"dataset": "fashion_mnist"},
        "train": {"arch": "cnn", "epochs": 2},
        "space": {"batch_size": [32, 64]},
    }
    trials = parse_plan(document).trials
    assert [t.config.batch_size for t in trials] == [32, 64]  # given: kept
    for t in trials:
        assert t.config.epochs == 2
        assert t.config.hidden == CNN_DEFAULTS["hidden"]
        assert t.config.beta == CNN_DEFAULTS["beta"]
    mlp = parse_plan({"data": {"dataset": "digits"}}).trials[0].config
    assert mlp.beta != CNN_DEFAULTS["beta"] and mlp.epochs != CNN_DEFAULTS["epochs"]

"""The study end to end on a tiny scale: training through aefast.train, resume, settings checks, the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from aefast.analyze.__main__ import main
from aefast.analyze.configs import DEFAULT_SWEEP, TUTORIAL_MSE, SweepConfig, select_configs
from aefast.analyze.results import ConfigResult
from aefast.analyze.study import StudyError, StudyOptions, run_study, sample_indices, train_config
from aefast.train import TrainConfig


def test_default_sweep_covers_the_tutorial_and_beyond():
    names = [c.name for c in DEFAULT_SWEEP]
    assert len(set(names)) == len(names) == 10
    assert {(c.latent, c.hidden) for c in DEFAULT_SWEEP} >= set(TUTORIAL_MSE)
    assert SweepConfig(30, (1000, 500, 250), 1).name == "latent30-hidden1000-500-250"
    assert sum(c.tutorial_mse is not None for c in DEFAULT_SWEEP) == 6


def test_overrides_select_and_reshape_configurations():
    assert [c.name for c in select_configs([100, 16])] == ["latent100-hidden1000", "latent100-hidden10000",
                                                          "latent16-hidden1000"]
    # --hidden makes both latent-100 configurations identical: one is kept.
    assert [c.name for c in select_configs([100], hidden=50, epochs=2)] == ["latent100-hidden50"]
    assert select_configs([7])[0].hidden == (1000,)
    assert {c.epochs for c in select_configs(quick=True)} == {select_configs(quick=True)[0].epochs}
    with pytest.raises(ValueError, match="between 1 and 784"):
        SweepConfig(785, (1000,), 1)


def test_a_configuration_can_carry_its_own_learning_rate(tmp_path):
    wide = next(c for c in DEFAULT_SWEEP if c.hidden == (10000,))
    assert wide.lr is not None and wide.lr < 1e-3  # lr 1e-3 left the wide model stuck at the mean image
    opts = StudyOptions(out=tmp_path, configs=[wide])
    assert train_config(opts, wide).lr == wide.lr
    assert train_config(opts, SweepConfig(8, (32,), 1)).lr == TrainConfig().lr
    assert select_configs([100], epochs=2)[1].lr == wide.lr  # overrides keep the per-configuration rate
    with pytest.raises(ValueError, match="learning rate must be positive"):
        SweepConfig(8, (32,), 1, lr=0.0)


def test_sample_indices_pick_the_first_of_each_digit():
    labels = np.array([3, 1, 3, 0, 1, 9])
    assert sample_indices(labels).tolist() == [3, 1, 0, 5]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, mnist_dir):
    """Two configurations, 256 training images, 1 epoch: trained once, shared by the tests below."""
    out = tmp_path_factory.mktemp("study")
    configs = [SweepConfig(8, (32,), 1), SweepConfig(4, (32,), 1)]
    opts = StudyOptions(out=out, configs=configs, train_limit=256, val_size=128, test_limit=300,
                        data_dir=str(mnist_dir), throughput_seconds=0.05, extra_train={"xla": False})
    logs = []
    report = run_study(opts, log=logs.append)
    return opts, report, logs


def test_study_writes_report_and_one_result_per_configuration(tiny_study):
    opts, report, _ = tiny_study
    md = report.read_text()
    for cfg in opts.configs:
        r = ConfigResult.load(opts.out / "results" / f"{cfg.name}.json")
        assert (opts.out / "runs" / cfg.name / "model.safetensors").is_file()
        assert f"`{cfg.name}`" in md
        # The engine's test MSE agrees with the trainer's Keras evaluation of the same exported model.
        assert r.test_mse == pytest.approx(r.train_metrics["test_mse"], rel=1e-4)
        # both served (clipped to [0, 1]); the unclipped figure is kept beside it and can only be higher
        assert r.test_mse_unclipped == pytest.approx(r.train_metrics["test_mse_unclipped"], rel=1e-4)
        assert r.test_mse_unclipped >= r.test_mse
        assert r.pca_mse_clipped <= r.pca_mse and r.compress_images_per_s > 0
        assert len(r.history) == 1 and np.array(r.sample_reconstructions).shape == (10, 784)
    assert "300 test images" in md and "256 MNIST training images" in md


def test_rerun_trains_nothing(tiny_study, monkeypatch):
    opts, report, _ = tiny_study
    import aefast.train as trainer

    def refuse(*args, **kwargs):
        raise AssertionError("a finished configuration was trained again")

    monkeypatch.setattr(trainer, "train", refuse)
    monkeypatch.setattr(trainer, "resume", refuse)
    logs = []
    assert run_study(opts, log=logs.append) == report
    assert sum("finished earlier, skipped" in line for line in logs) == 2


def test_interrupted_configuration_resumes_its_run(tiny_study, monkeypatch):
    opts, _, _ = tiny_study
    import aefast.train as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("started over instead of resuming"))
    victim = opts.out / "results" / f"{opts.configs[1].name}.json"
    before = json.loads(victim.read_text())
    victim.unlink()  # as if the study stopped after training but before this file was written
    logs = []
    run_study(opts, log=logs.append)
    assert any("continuing the interrupted run" in line for line in logs)
    after = json.loads(victim.read_text())
    assert after["history"] == before["history"] and after["test_mse"] == pytest.approx(before["test_mse"])


def test_changed_settings_are_refused(tiny_study):
    opts, _, _ = tiny_study
    changed = StudyOptions(**{**opts.__dict__, "configs": [SweepConfig(8, (32,), 2)]})
    with pytest.raises(StudyError, match="epochs: 1 there, 2 now"):
        run_study(changed, log=lambda s: None)


@pytest.mark.parametrize("args, message", [
    (["--latents", "0"], "outside 1..784"),
    (["--latents", "100,abc"], "'abc' is not an integer"),
    (["--latents", ","], "comma-separated list"),
    (["--epochs", "0"], "positive integer"),
    (["--hidden", "wide"], "positive integer"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_nonzero_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_reports_a_missing_data_dir(tmp_path):
    p = subprocess.run([sys.executable, "-m", "aefast.analyze", "--data-dir", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert p.returncode == 2 and "is not a directory" in p.stderr
    assert not (tmp_path / "r").exists()


def test_a_configuration_carries_its_recipe_and_a_short_override_cuts_the_warmup(tmp_path):
    deep = SweepConfig(30, (64, 32), 20, lr=3e-3, recipe=(("loss", "bce"), ("warmup", 2)))
    opts = StudyOptions(out=tmp_path, configs=[deep])
    config = train_config(opts, deep)
    assert (config.loss, config.warmup, config.lr, config.epochs) == ("bce", 2, 3e-3, 20)
    short = train_config(opts, SweepConfig(30, (64, 32), 2, recipe=(("warmup", 2),)))
    assert short.warmup == 1 and short.validate().epochs == 2
    with pytest.raises(ValueError, match=r"recipe settings \['epochs'\]"):
        SweepConfig(8, (32,), 1, recipe=(("epochs", 3),))
    with pytest.raises(ValueError, match=r"recipe settings \['nosuch'\]"):
        SweepConfig(8, (32,), 1, recipe=(("nosuch", 3),))


def test_cli_quick_and_image_limits_reach_the_study(monkeypatch):
    """The flags' mapping onto StudyOptions; that run_study applies train_limit/test_limit is tiny_study's test."""
    import aefast.analyze.study as study
    from aefast.train.config import QUICK

    seen = []
    monkeypatch.setattr(study, "run_study", seen.append)
    assert main(["--quick"]) == 0
    assert (seen[0].train_limit, seen[0].test_limit, seen[0].val_size) == \
        (QUICK["train_limit"], QUICK["test_limit"], QUICK["val_size"])
    assert {c.epochs for c in seen[0].configs} == {QUICK["epochs"]} and str(seen[0].out) == "reports/quick"
    assert main(["--quick", "--train-images", "300", "--test-images", "200"]) == 0
    assert (seen[1].train_limit, seen[1].test_limit) == (300, 200)
    assert main([]) == 0
    assert (seen[2].train_limit, seen[2].test_limit, str(seen[2].out)) == (None, None, "reports/study")


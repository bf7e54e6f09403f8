"""report.md, figures and computed findings from synthetic result records."""
import math

import numpy as np
import pytest

from aefast.analyze.findings import findings
from aefast.analyze.report import FIGURES, results_table, write_report
from aefast.analyze.results import ConfigResult


def record(latent, hidden, mse, pca, pca_clipped, tutorial=None, seconds=10.0, n_samples=4):
    rng = np.random.default_rng(latent)
    return ConfigResult(
        name=f"latent{latent}-hidden{'-'.join(map(str, hidden))}", latent=latent, hidden=list(hidden), epochs=3,
        settings={"latent": latent}, test_mse=mse, pca_mse=pca, pca_mse_clipped=pca_clipped,
        train_seconds=seconds, compress_images_per_s=1000.0 * latent, tutorial_mse=tutorial,
        history=[{"epoch": e + 1, "train_loss": 0.02 / (e + 1), "val_loss": 0.025 / (e + 1)} for e in range(3)],
        sample_reconstructions=rng.integers(0, 256, size=(n_samples, 784)).tolist())


@pytest.fixture()
def results():
    return [record(784, [1000], 0.001, 1e-31, 1e-31, tutorial=0.00027),
            record(100, [1000], 0.004, 0.0056, 0.0046, tutorial=0.00694),
            record(100, [10000], 0.003, 0.0056, 0.0046, tutorial=0.00408, seconds=100.0),
            record(16, [1000], 0.012, 0.0268, 0.0254)]


def test_ratios_and_psnr():
    r = record(100, [1000], 0.01, 0.02, 0.02)
    assert r.ratio_dims == pytest.approx(7.84)
    assert r.ratio_bytes == pytest.approx(3.92)
    assert r.psnr_db == pytest.approx(20.0)
    assert record(784, [1000], 0.0, 0.0, 0.0).psnr_db == math.inf


def test_table_has_one_row_per_configuration_with_measured_values(results):
    table = results_table(results).splitlines()
    assert len(table) == 2 + len(results)
    row100 = next(line for line in table if "`latent100-hidden1000`" in line)
    cells = [c.strip() for c in row100.strip("|").split("|")]
    assert cells[1:9] == ["100", "7.84", "3.92", "0.004", "23.98", "0.0056", "0.0046", "0.00694"]
    assert "100,000" in row100  # throughput


def test_findings_follow_the_numbers(results):
    text = " ".join(findings(results, test_variance=0.05))
    assert "beats PCA (clipped to [0, 1]) at latent size 100, 100 (hidden 10000), 16" in text
    assert "PCA is better at latent size 784" in text and "exact" in text
    assert "crossover follows code size" in text
    assert "hidden 10000 gives a test MSE 1.33x lower than hidden 1000, for 10.0x the training time" in text
    # Swap the numbers: the conclusion must change with them.
    flipped = [record(100, [1000], 0.009, 0.0056, 0.0046, tutorial=0.00694)]
    text = " ".join(findings(flipped))
    assert "beats PCA" not in text and "PCA is better at latent size 100" in text
    assert "higher than the tutorial at latent 100" in text


def test_a_served_figure_level_with_clipped_pca_reads_as_equal(tmp_path, results):
    """A linear-output row that kept the PCA start: served (clipped) 4.0934e-05 against clipped PCA's 4.093e-05,
    unclipped 4.962e-05. Findings call it equal, not worse; the report lists the unclipped figure under the table."""
    import dataclasses

    level = dataclasses.replace(record(500, [1000], 4.0934e-05, 4.95e-05, 4.093e-05, tutorial=0.00043),
                                test_mse_unclipped=4.962e-05, train_metrics={"best_epoch": 0})
    text = " ".join(findings([level, *results[1:]]))
    assert ("The autoencoder equals PCA (clipped to [0, 1]) at latent size 500: its test MSE is within 0.1% of "
            "PCA's (best epoch 0: no trained epoch improved on the PCA start, so the model computes PCA).") in text
    assert "PCA is better at latent size 500" not in text and "crossover follows code size" in text
    worse = dataclasses.replace(level, test_mse=4.955e-05)
    assert "PCA is better at latent size 500 (the autoencoder's MSE is 1.21x PCA's)" in " ".join(findings([worse]))
    samples = np.zeros((4, 784), np.uint8)
    md = write_report(tmp_path, [level, *results[1:]], samples, {"train_images": 1, "test_images": 1}).read_text()
    assert "Test MSE of the unclipped outputs (linear output layers): `latent500-hidden1000` 4.96e-05." in md
    assert "Test MSE of the unclipped" not in write_report(tmp_path, results, samples,
                                                           {"train_images": 1, "test_images": 1}).read_text()


def test_write_report_writes_markdown_and_figures(tmp_path, results):
    samples = np.random.default_rng(0).integers(0, 256, size=(4, 784), dtype=np.uint8)
    path = write_report(tmp_path, results, samples,
                        {"train_images": 1000, "test_images": 500, "command": "python -m aefast.analyze --quick",
                         "pending": ["latent30-hidden1000-500-250"]})
    md = path.read_text()
    assert md.startswith("# Compression study")
    assert "1,000 MNIST training images" in md and "latent30-hidden1000-500-250" in md
    for name in FIGURES.values():
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        assert f"]({name})" in md
    assert not list(tmp_path.glob(".*.tmp"))


def test_grid_rejects_mismatched_samples(tmp_path, results):
    with pytest.raises(ValueError, match="expected 3"):
        write_report(tmp_path, results, np.zeros((3, 784), np.uint8), {"train_images": 1, "test_images": 1})


def test_results_roundtrip_and_damaged_file(tmp_path, results):
    path = results[1].save(tmp_path)
    back = ConfigResult.load(path)
    assert back == results[1]
    path.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="lack .*latent"):
        ConfigResult.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read study results"):
        ConfigResult.load(path)

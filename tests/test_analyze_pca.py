"""PCA baseline: checked against brute-force linear algebra on small matrices."""
import numpy as np
import pytest

from aefast.analyze.pca import fit_pca, pca_test_mse


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    # 60 images of 12 pixels with correlated structure (rank-4 signal plus noise), values in [0, 1].
    basis = rng.normal(size=(4, 12))
    x = 0.5 + 0.1 * rng.normal(size=(60, 4)) @ basis + 0.01 * rng.normal(size=(60, 12))
    return np.clip(x, 0, 1), np.clip(0.5 + 0.1 * rng.normal(size=(25, 4)) @ basis, 0, 1)


def test_reconstruction_matches_brute_force_projection(data):
    train, test = data
    pca = fit_pca(train)
    mean = train.mean(axis=0)
    # Brute force: the k leading eigenvectors of the covariance, projection matrix P = V V^T.
    evals, evecs = np.linalg.eigh(np.cov(train - mean, rowvar=False))
    for k in (1, 3, 7):
        v = evecs[:, np.argsort(evals)[::-1][:k]]
        expected = (test - mean) @ v @ v.T + mean
        np.testing.assert_allclose(pca.reconstruct(test, k), expected, rtol=0, atol=1e-10)
        scores = pca_test_mse(pca, test, [k])[k]
        assert scores["mse"] == pytest.approx(np.mean((expected - test) ** 2), rel=1e-10)
        assert scores["mse_clipped"] == pytest.approx(np.mean((np.clip(expected, 0, 1) - test) ** 2), rel=1e-10)


def test_truncated_svd_is_the_best_rank_k_fit_of_training_data(data):
    train, _ = data
    pca = fit_pca(train)
    centered = train - train.mean(axis=0)
    u, s, vt = np.linalg.svd(centered, full_matrices=False)
    for k in (2, 5):
        # Eckart-Young: the squared error of the best rank-k approximation is the sum of the dropped s^2.
        err = np.sum((pca.reconstruct(train, k) - train) ** 2)
        assert err == pytest.approx(np.sum(s[k:] ** 2), rel=1e-9)
        # A random rank-k projection does no better.
        q, _ = np.linalg.qr(np.random.default_rng(k).normal(size=(12, k)))
        assert err <= np.sum((centered @ q @ q.T - centered) ** 2)


def test_mse_decreases_with_components_and_full_rank_is_exact(data):
    train, test = data
    pca = fit_pca(train)
    scores = pca_test_mse(pca, test, list(range(1, 13)))
    mses = [scores[k]["mse"] for k in range(1, 13)]
    assert all(a >= b - 1e-15 for a, b in zip(mses, mses[1:]))
    assert mses[0] > 100 * mses[5]
    assert scores[12]["mse"] < 1e-25
    np.testing.assert_allclose(pca.reconstruct(test, 12), test, atol=1e-12)
    assert all(s["mse_clipped"] <= s["mse"] + 1e-18 for s in scores.values())


def test_uint8_images_are_scaled_like_floats():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(30, 4, 4), dtype=np.uint8)
    a, b = fit_pca(imgs), fit_pca(imgs.reshape(30, 16) / 255.0)
    np.testing.assert_allclose(a.reconstruct(imgs, 3), b.reconstruct(imgs.reshape(30, 16) / 255.0, 3), atol=1e-12)


def test_bad_input_names_the_problem(data):
    train, test = data
    pca = fit_pca(train)
    with pytest.raises(ValueError, match="between 1 and 12"):
        pca.reconstruct(test, 13)
    with pytest.raises(ValueError, match="fitted on 12"):
        pca.reconstruct(np.zeros((2, 11)), 2)
    with pytest.raises(ValueError, match="at least 2"):
        fit_pca(train[:1])
    with pytest.raises(ValueError, match="NaN"):
        fit_pca(np.full((3, 4), np.nan))

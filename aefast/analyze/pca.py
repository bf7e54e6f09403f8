"""The PCA baseline's home is aefast.data.pca (below both the trainer and the study); this path re-exports it."""
from ..data.pca import PCA, fit_pca, pca_test_mse

__all__ = ["PCA", "fit_pca", "pca_test_mse"]

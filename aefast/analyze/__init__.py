"""The compression study: `python -m aefast.analyze` trains autoencoders of several latent sizes through
aefast.train, scores them with the aefast engine against a PCA baseline and the tutorial's figures, and writes a
report folder (report.md, figures, per-configuration results that let an interrupted study resume).

Modules: configs (the sweep), pca (closed-form baseline), results (one configuration's record), study (running
and resuming), findings (computed text), plots and report (output). Importing this package loads nothing heavy.
"""

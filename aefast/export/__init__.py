"""Offline work on a model before it ships: computed once, at export, and stored in the model file.

  calibration  each layer's mean input over training images (`dense_i.input_mean`), for the int8 engine's bias
               correction (aefast.engine.precisions.corrected_bias); `python -m aefast.export.calibration MODEL`

The Keras exporter is aefast.keras_io, on the same floor (docs/architecture.md).
"""

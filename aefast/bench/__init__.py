"""The aefast benchmark suite: aefast's engine against NumPy, TensorFlow, ONNX Runtime, TFLite and LiteRT.

`python -m aefast.bench --help` runs the comparison and writes results.md/json/png; `pytest bench/ --benchmark-only`
runs the same contenders under pytest-benchmark. Importing this package is light: every heavy library
(TensorFlow, onnxruntime, numba) is imported only when a contender that needs it is prepared.

Modules: models (what is run), contenders (who runs it, checked), timing (interleaved timer),
machine (the machine, its sgemm ceiling and instruction peaks), report (tables, targets, plot), runner (the whole
comparison).
"""

"""Models from and to other tools: ONNX graphs and PyTorch modules of dense layers (docs/interop.md).

  chain       a chain of dense layers read from another tool -> AutoencoderWeights (code layer, image shape)
  onnx_read   read_onnx / parse_onnx: an .onnx chain of MatMul+Add or Gemm layers and activations
  onnx_write  export_onnx / onnx_model: AutoencoderWeights -> an ONNX graph (whole, encoder or decoder)
  pytorch     from_torch: a torch.nn.Sequential of Linear layers and activations, read without ONNX
  load        read_any: an .onnx file or an aefast model file, by suffix

Floor 2 (docs/architecture.md): imports only the model floor, so that the engine's `load` can read .onnx files.
`onnx` is imported only when a graph is read or written (the `onnx` extra), torch never.
"""
from __future__ import annotations

from .chain import DenseLayer, weights_from_chain
from .load import is_onnx_path, read_any
from .onnx_read import parse_onnx, read_onnx
from .onnx_write import export_onnx, onnx_model
from .pytorch import from_torch

__all__ = ["DenseLayer", "export_onnx", "from_torch", "is_onnx_path", "onnx_model", "parse_onnx", "read_any",
           "read_onnx", "weights_from_chain"]

"""The model: the bottom floor of aefast above errors and file writing (docs/architecture.md).

  activations  the activation strings a model names ("relu", "elu(0.5)", ...) and their float64 definitions
  weights      AutoencoderWeights, the in-memory autoencoder every other floor passes around
  validation   the structural invariants of a valid autoencoder and their limits
  ranges       the bound on every value a model can compute (refuses weights that overflow float32)
  bits         bf16 / fp16 conversions between float32 values and the 16-bit forms a file stores
  safetensors  the safetensors container: header, tensors, bounded reads of untrusted files
  digest       the integrity digests a model file carries
  file         the aefast model file on top of it: save_model, parse_model, read_model (docs/format.md)

Imports nothing from aefast but aefast.errors and aefast._io.
"""
from __future__ import annotations

from .activations import activation_spec, apply_activation, parse_activation
from .bits import bf16_bits_to_float, float_to_bf16_bits, round_to_bf16
from .digest import MODEL_DIGEST_KEY, TENSORS_DIGEST_KEY, model_digest, tensors_digest
from .file import (FORMAT_NAME, FORMAT_VERSION, READ_VERSIONS, STORAGE_DTYPES, model_file_bytes, parse_model,
                   read_model, save_model)
from .ranges import VALUE_LIMIT, layer_bounds
from .safetensors import MAX_FILE_BYTES, MAX_HEADER_BYTES, MAX_JSON_DEPTH
from .validation import ACTIVATIONS, MAX_LAYERS, MAX_PIXEL_SCALE, MAX_WIDTH, MIN_PIXEL_SCALE
from .weights import INTEGRITY_ABSENT, INTEGRITY_UNCHECKED, INTEGRITY_VERIFIED, AutoencoderWeights

__all__ = ["ACTIVATIONS", "AutoencoderWeights", "FORMAT_NAME", "FORMAT_VERSION", "INTEGRITY_ABSENT",
           "INTEGRITY_UNCHECKED", "INTEGRITY_VERIFIED", "MAX_FILE_BYTES", "MAX_HEADER_BYTES", "MAX_JSON_DEPTH",
           "MAX_LAYERS", "MAX_PIXEL_SCALE", "MAX_WIDTH", "MIN_PIXEL_SCALE", "MODEL_DIGEST_KEY", "READ_VERSIONS",
           "STORAGE_DTYPES", "TENSORS_DIGEST_KEY", "VALUE_LIMIT", "activation_spec", "apply_activation",
           "bf16_bits_to_float", "float_to_bf16_bits", "layer_bounds", "model_digest", "model_file_bytes",
           "parse_activation", "parse_model", "read_model", "round_to_bf16", "save_model", "tensors_digest"]

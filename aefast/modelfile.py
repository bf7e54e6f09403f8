"""The aefast model file, under its original import path: a re-export of aefast.model (see docs/format.md).

DIGEST_KEY is the key of the digest the current format writes (aefast.model.digest).
"""
from __future__ import annotations

from .model.bits import from_storage as _from_storage, to_storage as _to_storage  # noqa: F401
from .model.digest import MODEL_DIGEST_KEY as DIGEST_KEY, TENSORS_DIGEST_KEY, digest_order as _digest_order  # noqa: F401
from .model.digest import model_digest, tensors_digest  # noqa: F401
from .model.file import (FORMAT_NAME, FORMAT_VERSION, READ_VERSIONS, STORAGE_DTYPES,  # noqa: F401
                         model_file_bytes, model_metadata, parse_model, read_model,
                         save_model)
from .model.safetensors import (MAX_FILE_BYTES, MAX_HEADER_BYTES, MAX_JSON_DEPTH,  # noqa: F401
                                json_depth as _json_depth, read_header as _read_header,
                                safetensors_bytes as _safetensors_bytes)
from .model.validation import (ACTIVATIONS, MAX_LAYERS, MAX_PIXEL_SCALE, MAX_WIDTH,  # noqa: F401
                               MIN_PIXEL_SCALE)
from .model.weights import (INTEGRITY_ABSENT, INTEGRITY_UNCHECKED, INTEGRITY_VERIFIED,  # noqa: F401
                            AutoencoderWeights)
from .errors import ModelFileError  # noqa: F401


def _metadata(model: AutoencoderWeights, digest: str) -> dict[str, str]:
    """The metadata strings of a current-version file for `model`, with `digest` as its digest."""
    return {**model_metadata(model), DIGEST_KEY: digest}

"""Reading an ONNX graph of dense layers into AutoencoderWeights (`read_onnx`, `parse_onnx`).

What fits: one float32 graph input, an optional leading Flatten (axis 1) or Reshape to (batch, D), then dense
layers, each `MatMul` [+ `Add`] or `Gemm` (any transB, alpha, beta; transA 0), each followed by at most one
elementwise activation: Relu, LeakyRelu, Elu, Sigmoid, Tanh, or Clip(min=0, no max) as ReLU, or ELU with alpha A
written as where(x > 0, Elu(x), A * Elu(x)) (Keras's ELU layer through tf2onnx, see _select_elu); `Identity`
anywhere; an optional trailing Flatten/Reshape; one float32 graph output. Weights are FLOAT or FLOAT16 initializers or
Constant nodes, or a Cast(to=FLOAT) of one. Anything else is an UnsupportedModelError naming the first node that
does not fit and why; a file that is not a readable ONNX model is a ModelFileError.

Untrusted files: the file is read whole only when it is a regular file of at most MAX_ONNX_BYTES (protobuf's own
limit); every tensor's declared shape is checked against the bytes it really holds before any array is made, so a
tensor declaring 2^40 values allocates nothing; external data is read only from a regular file inside the model's
folder, at most the declared size, checked against that file's length first.

A graph written by `aefast.export_onnx` carries metadata_props `aefast.input_shape`, `aefast.encoder_layers` and
`aefast.pixel_scale`; they are the defaults for the arguments of the same meaning.
"""
from __future__ import annotations

import json
import math
import os
import stat
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, UnsupportedModelError
from ..model.activations import activation_spec
from ..model.validation import MAX_WIDTH
from ..model.weights import AutoencoderWeights
from .chain import DEFAULT_PIXEL_SCALE, DenseLayer, checked_input_shape, image_shape, weights_from_chain

MAX_ONNX_BYTES = (1 << 31) - 1
MIN_OPSET = 9
META_INPUT_SHAPE = "aefast.input_shape"
META_ENCODER_LAYERS = "aefast.encoder_layers"
META_PIXEL_SCALE = "aefast.pixel_scale"

# TensorProto.DataType codes this reader takes (onnx.TensorProto: FLOAT=1, INT64=7, FLOAT16=10).
_FLOAT, _INT64, _FLOAT16 = 1, 7, 10
_DTYPES = {_FLOAT: np.dtype("<f4"), _FLOAT16: np.dtype("<f2"), _INT64: np.dtype("<i8")}
_DTYPE_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 16: "BFLOAT16"}
_ACTIVATIONS = ("Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Clip")
_RESHAPES = ("Flatten", "Reshape")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("reading or writing ONNX needs the onnx package: pip install 'aefast[onnx]'") from None
    return onnx


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (a FIFO or device is refused without blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise ModelFileError(f"{path}: is a directory, expected {what}")
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{path}: not a regular file (a device, FIFO or socket), expected {what}")
        if st.st_size > limit:
            raise ModelFileError(f"{path}: {st.st_size} bytes is more than the {limit} bytes of {what} aefast reads")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: grew past {limit} bytes while it was read")
    return data


def read_onnx(path: str | os.PathLike, input_shape=None, latent_layer: int | None = None,
              pixel_scale: float | None = None) -> AutoencoderWeights:
    """AutoencoderWeights from an .onnx file (see the module docstring for what fits).

    input_shape: the image shape (its product the first layer's input width); default: from the graph's input
    (after the batch axis), else the flat width. latent_layer: the index of the layer whose output is the code;
    default: the narrowest layer. pixel_scale: what uint8 pixels are divided by (default 255)."""
    path = Path(path)
    try:
        data = read_bounded(path, MAX_ONNX_BYTES, "an .onnx model")
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror})") from None
    return parse_onnx(data, str(path), path.resolve().parent, input_shape=input_shape, latent_layer=latent_layer,
                      pixel_scale=pixel_scale)


def _node_name(node, index: int) -> str:
    name = f" {node.name!r:.80}" if node.name else ""
    return f"node #{index}{name} ({node.op_type:.40})"


class _Graph:
    """One pass over a parsed ModelProto: constants, consumers, and the walk along the chain."""

    def __init__(self, model, source: str, base_dir: Path | None):
        self.source, self.base_dir = source, base_dir
        self.graph = g = model.graph
        self.nodes = list(g.node)
        self.initializers = {t.name: t for t in g.initializer}
        self.constants = dict(self.initializers)
        for index, node in enumerate(self.nodes):
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                values = [a for a in node.attribute if a.name == "value"]
                if len(node.attribute) != 1 or not values or len(node.output) != 1:
                    self.fail(index, "a Constant must hold one tensor in its 'value' attribute")
                self.constants[node.output[0]] = values[0].t
        # Cast(to=FLOAT) of a stored constant (FLOAT16 weights widened, as export_onnx(dtype="float16") writes them):
        # output name -> the constant it widens, read as float32.
        self.casts = {node.output[0]: node.input[0] for node in self.nodes
                      if node.op_type == "Cast" and len(node.input) == 1 and len(node.output) == 1
                      and node.input[0] in self.constants
                      and any(a.name == "to" and a.i == _FLOAT for a in node.attribute)}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            for name in node.input:
                if name:
                    self.consumers[name].append(index)
        self.graph_inputs = {v.name for v in g.input}

    def fail(self, index: int, why: str):
        raise UnsupportedModelError(f"{self.source}: {_node_name(self.nodes[index], index)}: {why}")

    def constant(self, index: int, name: str, kinds=(_FLOAT, _FLOAT16)) -> np.ndarray:
        """Input `name` of node `index` as a float32 (or int64) array; refused unless it is a stored constant."""
        if name in self.graph_inputs:
            extra = " (an initializer also listed as a graph input, so a caller may replace it at run time)" \
                if name in self.initializers else ""
            self.fail(index, f"its weight {name!r:.80} is a graph input{extra}; expected a constant stored in the "
                             "graph (an initializer)")
        if name in self.casts and name not in self.constants:
            return self.constant(index, self.casts[name], kinds)
        if name not in self.constants:
            self.fail(index, f"its input {name!r:.80} is computed at run time; expected a constant weight")
        return self.tensor(index, self.constants[name], kinds)

    def tensor(self, index: int, t, kinds) -> np.ndarray:
        where = f"tensor {t.name!r:.80}"
        if t.data_type not in kinds:
            self.fail(index, f"{where} has data type {_DTYPE_NAMES.get(t.data_type, t.data_type)}; expected "
                             f"{' or '.join(_DTYPE_NAMES[k] for k in kinds)}")
        dims = list(t.dims)
        if len(dims) > 2 or any(d < 0 or d > MAX_WIDTH for d in dims):
            self.fail(index, f"{where} declares shape {dims[:8]}; expected at most 2 dimensions of 0..{MAX_WIDTH}")
        if t.HasField("segment"):
            self.fail(index, f"{where} is a segment of a tensor; expected a whole tensor")
        dtype = _DTYPES[t.data_type]
        count = math.prod(dims)
        nbytes = count * dtype.itemsize
        if t.data_location == 1:   # EXTERNAL
            raw = self.external(index, t, nbytes)
        elif t.raw_data:
            raw = t.raw_data
            if len(raw) != nbytes:
                self.fail(index, f"{where} declares shape {dims} ({nbytes} bytes) but holds {len(raw)} bytes")
        else:
            field = {_FLOAT: t.float_data, _FLOAT16: t.int32_data, _INT64: t.int64_data}[t.data_type]
            if len(field) != count:
                self.fail(index, f"{where} declares shape {dims} ({count} values) but holds {len(field)} values")
            if t.data_type == _FLOAT16:   # FLOAT16 values are stored as their bits in int32_data
                return np.array(field, np.uint16).view(np.float16).astype(np.float32).reshape(dims)
            return np.array(field, dtype.newbyteorder("=")).reshape(dims)
        arr = np.frombuffer(raw, dtype).reshape(dims)
        return arr.astype(np.int64 if t.data_type == _INT64 else np.float32)

    def external(self, index: int, t, nbytes: int) -> bytes:
        where = f"tensor {t.name!r:.80}"
        entries = {e.key: e.value for e in t.external_data}
        location = entries.get("location", "")
        if self.base_dir is None:
            self.fail(index, f"{where} keeps its data in an external file, but the model was given as bytes; "
                             "expected the .onnx file's path")
        folder = self.base_dir.resolve()
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            self.fail(index, f"{where}: external-data path {location!r:.120} lies outside the model's folder "
                             f"{str(folder)!r:.120}; expected a file beside the model")
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries.get("length", str(nbytes)))
        except ValueError:
            self.fail(index, f"{where}: external-data offset/length are not integers")
        if length != nbytes or offset < 0:
            self.fail(index, f"{where}: external data of {length} bytes at offset {offset}; its shape needs "
                             f"{nbytes} bytes")
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            self.fail(index, f"{where}: cannot open external data {location!r:.120} ({e.strerror})")
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or offset + nbytes > st.st_size:
                self.fail(index, f"{where}: external data {location!r:.120} is not a regular file of at least "
                                 f"{offset + nbytes} bytes")
            f.seek(offset)
            raw = f.read(nbytes)
        if len(raw) != nbytes:
            self.fail(index, f"{where}: external data {location!r:.120} ended early")
        return raw

    def attribute(self, node, name: str, default):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def next_node(self, tensor: str, outputs: set[str]) -> int | None:
        """The one node that consumes `tensor`; None where `tensor` is the graph output."""
        users = self.consumers.get(tensor, [])
        if len(users) > 1:
            names = ", ".join(_node_name(self.nodes[i], i) for i in users[:4])
            self.fail(users[1], f"tensor {tensor!r:.80} feeds {len(users)} nodes ({names}): a skip connection or "
                                "branch; expected a chain where each value feeds the next node alone")
        if tensor in outputs:
            if users:
                self.fail(users[0], f"takes the graph output {tensor!r:.80} as input; expected the output last")
            return None
        if not users:
            raise UnsupportedModelError(f"{self.source}: tensor {tensor!r:.80} is neither used by a node nor the "
                                        "graph output; expected a chain from the input to the output")
        return users[0]


def _opset(model, source: str) -> int:
    onnx = _onnx()
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if version is None or not MIN_OPSET <= version <= newest:
        raise UnsupportedModelError(f"{source}: ONNX opset {version} of the default domain; this reader takes "
                                    f"opsets {MIN_OPSET}..{newest}")
    return version


def _input_dims(value, source: str) -> list[int] | None:
    """The graph input's dims after the batch axis (None when the graph does not say); refuses non-float32."""
    tt = value.type.tensor_type
    if not value.type.HasField("tensor_type") or tt.elem_type != _FLOAT:
        kind = _DTYPE_NAMES.get(tt.elem_type, tt.elem_type) if value.type.HasField("tensor_type") else "not a tensor"
        raise UnsupportedModelError(f"{source}: graph input {value.name!r:.80} has element type {kind}; expected "
                                    "FLOAT (float32)")
    if not tt.HasField("shape"):
        return None
    dims = tt.shape.dim[1:]
    if not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return None
    return [int(d.dim_value) for d in dims]


def _metadata(model, source: str) -> dict:
    """The aefast metadata_props a graph written by export_onnx carries, checked."""
    props = {p.key: p.value for p in model.metadata_props if p.key.startswith("aefast.")}
    found = {}
    for key in (META_INPUT_SHAPE, META_ENCODER_LAYERS, META_PIXEL_SCALE):
        if key in props:
            try:
                value = json.loads(props[key][:1000])
            except ValueError:
                raise ModelFileError(f"{source}: metadata {key!r} is not JSON: {props[key]!r:.80}") from None
            found[key] = value
    return found


def parse_onnx(data: bytes, source: str = "<onnx>", base_dir: Path | None = None, input_shape=None,
               latent_layer: int | None = None, pixel_scale: float | None = None) -> AutoencoderWeights:
    """AutoencoderWeights from the bytes of an .onnx model (arguments as read_onnx; base_dir: the folder external
    data is read from, None to refuse external data)."""
    onnx = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:   # protobuf's DecodeError (its class depends on the protobuf backend)
        raise ModelFileError(f"{source}: not a readable ONNX model ({type(e).__name__}: {str(e)[:120]})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{source}: holds no ONNX graph (empty or not an .onnx file)")
    _opset(model, source)
    g = _Graph(model, source, base_dir)
    for index, node in enumerate(g.nodes):
        if node.domain not in ("", "ai.onnx"):
            g.fail(index, f"operator domain {node.domain!r:.80}; expected the default ONNX domain")
    data_inputs = [v for v in g.graph.input if v.name not in g.initializers]
    if len(data_inputs) != 1:
        for index, node in enumerate(g.nodes):   # name the node that takes a weight from a graph input
            for name in node.input[1:]:
                if name in g.graph_inputs:
                    g.constant(index, name)
        raise UnsupportedModelError(f"{source}: the graph has {len(data_inputs)} inputs; expected one (the images)")
    outputs = [v.name for v in g.graph.output]
    if len(outputs) != 1:
        raise UnsupportedModelError(f"{source}: the graph has {len(outputs)} outputs; expected one")
    out_type = g.graph.output[0].type.tensor_type
    if out_type.elem_type != _FLOAT:
        raise UnsupportedModelError(f"{source}: graph output {outputs[0]!r:.80} has element type "
                                    f"{_DTYPE_NAMES.get(out_type.elem_type, out_type.elem_type)}; expected FLOAT")
    dims = _input_dims(data_inputs[0], source)
    meta = _metadata(model, source)
    layers, used, graph_shape = _walk(g, data_inputs[0].name, set(outputs), dims)
    for index, node in enumerate(g.nodes):
        if index not in used and not (node.op_type == "Constant" and node.output[0] in g.constants) \
                and not (node.op_type == "Cast" and node.output[0] in g.casts):
            g.fail(index, "is not on the chain from the graph input to its output")
    width = layers[0].kernel.shape[0]
    if input_shape is None and META_INPUT_SHAPE in meta:
        input_shape = meta[META_INPUT_SHAPE]
    if input_shape is not None:
        shape = checked_input_shape(input_shape, width, source)
    elif graph_shape is not None:
        shape = image_shape(graph_shape, width, source, f"graph input {data_inputs[0].name!r:.80}")
    else:
        shape = (width,)
    if latent_layer is None and isinstance(meta.get(META_ENCODER_LAYERS), int):
        latent_layer = meta[META_ENCODER_LAYERS] - 1
    if pixel_scale is None:
        scale = meta.get(META_PIXEL_SCALE, DEFAULT_PIXEL_SCALE)
        pixel_scale = scale if isinstance(scale, (int, float)) and not isinstance(scale, bool) \
            else DEFAULT_PIXEL_SCALE
    provenance = {"imported_from": "onnx", "producer": f"{model.producer_name:.80} {model.producer_version:.40}"}
    return weights_from_chain(layers, shape, source, latent_layer, pixel_scale, provenance)


def _walk(g: _Graph, tensor: str, outputs: set[str], dims):
    """Follow the chain from the graph input: -> (layers, indexes of the nodes used, input dims for the image
    shape or None)."""
    layers: list[DenseLayer] = []
    used: set[int] = set()
    width = math.prod(dims) if dims else None
    shape_dims = dims
    activated = True   # the last layer has its activation (or there is no layer yet)
    while True:
        if layers and len(g.consumers.get(tensor, ())) > 1:
            found = _select_elu(g, tensor, outputs)
            if found is not None:   # Keras's ELU(alpha) layer: one activation, spread over several nodes
                if activated:
                    g.fail(found[2][0], "ELU as where(x > 0, elu(x), A * elu(x)) is not right after a dense layer; "
                                        "expected one activation per dense layer")
                layers[-1].activation, tensor, nodes = found
                used.update(nodes)
                activated = True
                continue
        index = g.next_node(tensor, outputs)
        if index is None:
            break
        node = g.nodes[index]
        if index in used:   # a node whose output leads back to its input: the walk would never end
            g.fail(index, "is reached twice: the graph has a cycle; expected a chain from the input to the output")
        used.add(index)
        op = node.op_type
        if op == "Identity":
            tensor = node.output[0]
        elif op in _RESHAPES:
            if layers and g.next_node(node.output[0], outputs) is not None:
                g.fail(index, "a reshape between dense layers; expected Flatten/Reshape only first or last")
            if not layers and op == "Flatten" and g.attribute(node, "axis", 1) != 1:
                g.fail(index, f"Flatten axis={g.attribute(node, 'axis', 1)}; expected axis 1 (keep the batch axis)")
            if op == "Reshape" and not layers:
                target = g.constant(index, node.input[1], kinds=(_INT64,)).ravel().tolist()
                if len(target) != 2 or target[0] not in (0, -1) or (width and target[1] not in (-1, width)) \
                        or target == [-1, -1]:
                    g.fail(index, f"Reshape to {target[:8]}; expected (batch, {width or 'D'}) as [0 or -1, "
                                  f"{width or 'D'}]")
            tensor = node.output[0]
        elif op in ("MatMul", "Gemm"):
            if node.input[0] != tensor:
                g.fail(index, f"multiplies a weight by the data ({op} with the data second); expected data @ weight")
            kernel, bias = _dense(g, index, node)
            tensor = node.output[0]
            if op == "MatMul":
                nxt = g.next_node(tensor, outputs)
                if nxt is not None and g.nodes[nxt].op_type == "Add":
                    add = g.nodes[nxt]
                    used.add(nxt)
                    others = [name for name in add.input if name != tensor]
                    if len(add.input) != 2 or len(others) != 1:
                        g.fail(nxt, "an Add that is not data + a constant bias")
                    bias = _bias(g, nxt, g.constant(nxt, others[0]), kernel.shape[1])
                    tensor = add.output[0]
            need = width if width is not None else kernel.shape[0]
            if kernel.shape[0] != need:
                g.fail(index, f"takes {kernel.shape[0]} inputs but receives {need}: mismatched shapes")
            width = kernel.shape[1]
            layers.append(DenseLayer(kernel, bias, "linear", _node_name(node, index)))
            activated = False
        elif op in _ACTIVATIONS:
            if activated:
                g.fail(index, f"{op} is not right after a dense layer; expected one activation per dense layer")
            layers[-1].activation = _activation(g, index, node)
            activated = True
            tensor = node.output[0]
        else:
            g.fail(index, f"{op} is not part of a dense chain; expected MatMul/Add or Gemm layers with Relu, "
                          "LeakyRelu, Elu, Sigmoid, Tanh or Identity between them (a convolution, normalization "
                          "or other operator cannot be imported)")
    if not layers:
        raise UnsupportedModelError(f"{g.source}: the graph holds no dense layer (MatMul or Gemm)")
    return layers, used, shape_dims


def _bias(g: _Graph, index: int, b: np.ndarray, width: int) -> np.ndarray:
    try:
        return np.array(np.broadcast_to(b, (1, width))[0], np.float32)
    except ValueError:
        g.fail(index, f"bias of shape {list(b.shape)} does not broadcast to the layer's {width} outputs")


def _dense(g: _Graph, index: int, node) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (in, out), bias (out,)) of a MatMul (bias 0 until an Add) or a Gemm."""
    if len(node.input) < 2:
        g.fail(index, "has no weight input")
    w = g.constant(index, node.input[1])
    if w.ndim != 2:
        g.fail(index, f"weight of shape {list(w.shape)}; expected a 2-D matrix")
    if node.op_type == "MatMul":
        return w, np.zeros(w.shape[1], np.float32)
    if g.attribute(node, "transA", 0):
        g.fail(index, "Gemm with transA=1 transposes the data; expected transA=0")
    kernel = w.T if g.attribute(node, "transB", 0) else w
    alpha, beta = g.attribute(node, "alpha", 1.0), g.attribute(node, "beta", 1.0)
    if alpha != 1.0:
        kernel = np.float32(alpha) * kernel
    bias = np.zeros(kernel.shape[1], np.float32)
    if len(node.input) > 2 and node.input[2]:
        bias = _bias(g, index, g.constant(index, node.input[2]), kernel.shape[1])
        if beta != 1.0:
            bias = np.float32(beta) * bias
    return np.ascontiguousarray(kernel, np.float32), bias


def _activation(g: _Graph, index: int, node) -> str:
    op = node.op_type
    if op == "Relu":
        return "relu"
    if op == "Sigmoid":
        return "sigmoid"
    if op == "Tanh":
        return "tanh"
    if op == "LeakyRelu":
        return activation_spec("leaky_relu", float(g.attribute(node, "alpha", 0.01)))
    if op == "Elu":
        return activation_spec("elu", float(g.attribute(node, "alpha", 1.0)))
    # Clip: bounds as attributes (opset < 11) or as optional constant inputs.
    lo, hi = g.attribute(node, "min", None), g.attribute(node, "max", None)
    if len(node.input) > 1 and node.input[1]:
        lo = float(g.constant(index, node.input[1]).ravel()[0])
    if len(node.input) > 2 and node.input[2]:
        hi = float(g.constant(index, node.input[2]).ravel()[0])
    if lo == 0 and (hi is None or hi == math.inf):
        return "relu"
    g.fail(index, f"Clip({lo}, {hi}) (ReLU6 when 0, 6) has no counterpart among aefast's activations; expected "
                  "Relu, LeakyRelu, Elu, Sigmoid, Tanh, or Clip with min 0 and no max")


def _select_elu(g: _Graph, x: str, outputs: set[str]) -> tuple[str, str, list[int]] | None:
    """ELU with alpha A written as where(x > 0, elu(x), A * elu(x)): Keras's ELU layer with alpha != 1 (its
    TensorFlow backend computes exactly that), as tf2onnx converts it (opsets 9..18), in one of two forms:

      e = Elu(x); m = Greater(x, 0); a = Mul(A, e)
      Where(m, e, a)                                                   (a Where node)
      Add(Mul(Cast<float>(m), e), Mul(a, Cast<float>(Not(m))))         (tf2onnx: SelectV2 as mask arithmetic)

    A is a stored scalar constant, Mul and Add operands in either order, every intermediate tensor used by these
    nodes only. -> (the activation string, the output tensor, the node indexes), or None where the nodes after `x`
    are not exactly this (the caller then refuses the branch)."""
    def users(name: str) -> list[int]:
        return [] if name in outputs else g.consumers.get(name, [])

    def only(name: str, op: str) -> int | None:
        found = users(name)
        return found[0] if len(found) == 1 and g.nodes[found[0]].op_type == op else None

    def scalar(index: int, name: str) -> float | None:
        if name in g.graph_inputs or (name not in g.constants and name not in g.casts):
            return None
        value = g.constant(index, name)
        return float(value.ravel()[0]) if value.size == 1 else None

    def other(node, name: str) -> str | None:
        """The input of a two-input node that is not `name` (None unless exactly one is)."""
        rest = [i for i in node.input if i != name]
        return rest[0] if len(node.input) == 2 and len(rest) == 1 else None

    ops = {g.nodes[i].op_type: i for i in users(x)}
    if len(users(x)) != 2 or set(ops) != {"Elu", "Greater"}:
        return None
    i_elu, i_gt = ops["Elu"], ops["Greater"]
    elu, gt = g.nodes[i_elu], g.nodes[i_gt]
    if list(elu.input) != [x] or len(gt.input) != 2 or gt.input[0] != x or scalar(i_gt, gt.input[1]) != 0.0:
        return None
    e, mask = elu.output[0], gt.output[0]
    muls = [i for i in users(e) if g.nodes[i].op_type == "Mul"]
    alpha = i_alpha = None
    for i in muls:
        name = other(g.nodes[i], e)
        if name is not None and (value := scalar(i, name)) is not None:
            alpha, i_alpha = value, i
            break
    if i_alpha is None:
        return None
    a = g.nodes[i_alpha].output[0]
    used = [i_elu, i_gt, i_alpha]
    i_where = only(mask, "Where")
    if i_where is not None:   # Where(m, e, a)
        where = g.nodes[i_where]
        if list(where.input) != [mask, e, a] or sorted(users(e)) != sorted([i_alpha, i_where]) \
                or users(a) != [i_where]:
            return None
        used.append(i_where)
        out = where.output[0]
    else:   # Add(Mul(Cast(m), e), Mul(a, Cast(Not(m))))
        by_op = {g.nodes[i].op_type: i for i in users(mask)}
        if len(users(mask)) != 2 or set(by_op) != {"Not", "Cast"}:
            return None
        i_not, i_cast_m = by_op["Not"], by_op["Cast"]
        i_cast_n = only(g.nodes[i_not].output[0], "Cast")
        if i_cast_n is None or any(g.attribute(g.nodes[i], "to", 0) != _FLOAT for i in (i_cast_m, i_cast_n)):
            return None
        cast_m, cast_n = g.nodes[i_cast_m].output[0], g.nodes[i_cast_n].output[0]
        i_pos, i_neg = only(cast_m, "Mul"), only(a, "Mul")
        if i_pos is None or i_neg is None or other(g.nodes[i_pos], cast_m) != e \
                or other(g.nodes[i_neg], a) != cast_n or users(cast_n) != [i_neg] \
                or sorted(users(e)) != sorted([i_alpha, i_pos]):
            return None
        pos, neg = g.nodes[i_pos].output[0], g.nodes[i_neg].output[0]
        i_add = only(pos, "Add")
        if i_add is None or users(neg) != [i_add] or other(g.nodes[i_add], pos) != neg:
            return None
        used += [i_not, i_cast_m, i_cast_n, i_pos, i_neg, i_add]
        out = g.nodes[i_add].output[0]
    try:
        spec = activation_spec("elu", float(np.float32(alpha) * np.float32(g.attribute(elu, "alpha", 1.0))))
    except ValueError as err:
        g.fail(i_elu, f"ELU as where(x > 0, elu(x), A * elu(x)): {err}")
    return spec, out, used

"""`aefast import | export`: ONNX models in and out (aefast.interop; docs/interop.md).

    aefast import model.onnx -o model.safetensors --input-shape 28x28 --calibrate train.npy
    aefast export model.safetensors -o model.onnx --part encoder
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ModelFileError, UsageError


def shape_arg(text: str) -> tuple[int, ...]:
    """'28x28' -> (28, 28), '32x32x3' -> (32, 32, 3), '784' -> (784,)."""
    try:
        dims = tuple(int(p) for p in str(text).lower().split("x"))
    except ValueError:
        dims = ()
    if not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW, HxWxC or a width of positive integers (e.g. 28x28), got "
                                         f"{text!r}")
    return dims


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a layer index 0, 1, ..., got {text!r}")
    return value


def add_subcommands(sub) -> None:
    """Register import and export on an argparse subparsers object."""
    p = sub.add_parser("import", help="an .onnx chain of dense layers -> an aefast model file",
                       description="Convert an ONNX graph of dense layers (MatMul+Add or Gemm, with Relu, "
                       "LeakyRelu, Elu, Sigmoid, Tanh or no activation) into an aefast model file.")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .safetensors file to write")
    p.add_argument("--input-shape", type=shape_arg, metavar="HxW",
                   help="the image shape (HxW, HxWxC, or a width); default: from the graph's input")
    p.add_argument("--latent-layer", type=_nonnegative_int, metavar="N",
                   help="the index of the layer whose output is the code (default: the narrowest)")
    p.add_argument("--pixel-scale", type=float, metavar="S", help="uint8 pixels are divided by S (default 255)")
    p.add_argument("--calibrate", metavar="IMAGES", help="training images (.npy, .npz, IDX or a folder): store "
                   "each layer's mean input, which the int8 engine uses to correct its biases")
    p.add_argument("--dtype", choices=("float32", "float16", "bf16"), default="float32",
                   help="how the weights are stored (default float32)")
    p.set_defaults(run=run_import, parser=p)

    p = sub.add_parser("export", help="a model file -> an ONNX graph (whole, encoder or decoder)",
                       description="Write a model (.safetensors or .onnx) as an ONNX graph with a dynamic batch "
                       "dimension, for ONNX Runtime and other ONNX serving stacks.")
    p.add_argument("model", metavar="MODEL", help="the model file")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write")
    p.add_argument("--part", choices=("full", "encoder", "decoder"), default="full",
                   help="the whole autoencoder (default), the encoder (images -> codes) or the decoder")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="how the weights are stored (float16: half the size, widened by Cast nodes; default float32)")
    p.set_defaults(run=run_export, parser=p)


def run_import(args) -> int:
    from ..interop import read_onnx
    from ..model.file import save_model

    if args.output.suffix.lower() == ".onnx":
        raise UsageError(f"-o {args.output} names an .onnx file; import writes an aefast model file "
                         "(.safetensors); `aefast export` writes ONNX")
    try:
        weights = read_onnx(args.model, input_shape=args.input_shape, latent_layer=args.latent_layer,
                            pixel_scale=args.pixel_scale)
    except ImportError as e:
        raise UsageError(str(e)) from None
    if args.calibrate:
        from ..data.images import open_images
        from ..export.calibration import calibrated

        images = open_images(args.calibrate).x
        if images[0].size != weights.input_size:
            raise UsageError(f"{args.calibrate} holds images of {images[0].size} values, but the model takes "
                             f"{weights.input_size}")
        weights = calibrated(weights, images.reshape(len(images), -1))
    out = save_model(args.output, weights, dtype=args.dtype)
    print(f"wrote {out} ({'-'.join(map(str, weights.layer_sizes))}, {', '.join(weights.activations)}; code layer "
          f"{weights.encoder_layers - 1}, input {'x'.join(map(str, weights.input_shape))})")
    return 0


def run_export(args) -> int:
    from ..interop import export_onnx

    try:
        out = export_onnx(args.model, args.output, part=args.part, dtype=args.dtype)
    except ImportError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:   # ModelFileError passes through; weights beyond float16 are a usage error
        if isinstance(e, ModelFileError):
            raise
        raise UsageError(str(e)) from None
    print(f"wrote {out} ({args.part})")
    return 0

"""PyTorch contenders: the network as a `torch.nn.Sequential` of `Linear` layers and activations, run in fp32, under
`torch.autocast("cpu", torch.bfloat16)`, and through `torch.ao.quantization.quantize_dynamic` (int8 weights,
activations quantized per call) on the `x86` quantized engine; all under `torch.inference_mode()` with
`torch.set_num_threads` equal to aefast's engine's thread count. The same module is what a user would hand to
`aefast.from_torch`: the "aefast from_torch" contenders load it that way, so both sides run the very same weights."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ...model.activations import parse_activation
from ..models import op_layers
from .base import Contender, Runner, Skipped, require
from .context import BuildContext

PRECISIONS = ("fp32", "bf16", "int8")
QUANTIZED_ENGINE = "x86"


def torch_module(ctx: BuildContext, op: str):
    """The float32 nn.Sequential of `op`'s layers: Linear (weight = kernel.T) then ReLU / LeakyReLU / ELU /
    Sigmoid / Tanh (nothing for linear), in eval mode."""
    def make():
        torch = require("torch")
        nn = torch.nn
        modules = []
        for k, b, activation in op_layers(ctx.weights, op):
            linear = nn.Linear(k.shape[0], k.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.T)))
                linear.bias.copy_(torch.from_numpy(b))
            modules.append(linear)
            kind, alpha = parse_activation(activation)
            if kind != "linear":
                modules.append({"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[kind]() if alpha is None
                               else nn.ELU(alpha) if kind == "elu" else nn.LeakyReLU(alpha))
        return nn.Sequential(*modules).eval()
    return ctx.cached(("torch", op), make)


def _torch_setup(ctx: BuildContext):
    torch = require("torch")
    torch.set_num_threads(ctx.engine_threads())
    return torch


def _torch(precision: str):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        torch = _torch_setup(ctx)
        module = torch_module(ctx, op)
        if precision == "int8":
            if QUANTIZED_ENGINE not in torch.backends.quantized.supported_engines:
                raise Skipped(f"this PyTorch has no {QUANTIZED_ENGINE!r} quantized engine "
                              f"(has {torch.backends.quantized.supported_engines})")
            torch.backends.quantized.engine = QUANTIZED_ENGINE

            def quantize():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # torch.ao.quantization's deprecation notices
                    return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
            module = ctx.cached(("torch dynamic int8", op), quantize)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                if precision == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return module(torch.from_numpy(x)).float().numpy()
                return module(torch.from_numpy(x)).numpy()
        return run
    return build


def _aefast_from_torch(precision: str):
    """aefast's C++ engine on the weights `aefast.from_torch` reads from `torch_module` (int8: with the calibration
    means of the model under test, as `aefast import --calibrate` adds them)."""
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        require("torch")
        from ...interop.pytorch import from_torch

        def make():
            weights = from_torch(torch_module(ctx, "reconstruct"), ctx.weights.input_shape,
                                 latent_layer=ctx.weights.encoder_layers - 1)
            # the same weights, so the same layer input means (the engine's int8 uses them)
            return dataclasses.replace(weights, input_means=ctx.weights.input_means).validate("from_torch")
        weights = ctx.cached(("from_torch weights",), make)

        def engine():
            import aefast
            return aefast.load(weights, precision=precision)
        return getattr(ctx.cached(("from_torch engine", precision), engine), op)
    return build


CONTENDERS = tuple(Contender(f"pytorch {'dynamic int8' if p == 'int8' else p}", "peer", p, _torch(p))
                   for p in PRECISIONS)
# aefast's engine on the module imported by aefast.from_torch ("your PyTorch model"; not in the default set: the
# "aefast cpp" contenders run the same weights already).
FROM_TORCH_CONTENDERS = tuple(Contender(f"aefast from_torch {p}", "aefast", p, _aefast_from_torch(p))
                              for p in ("fp32", "fp16", "bf16", "int8"))

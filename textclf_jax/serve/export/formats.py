"""Writing a traced inference function as ONNX (jax2onnx) or StableHLO (jax.export).

Both take tokens [batch, length] int32 and lengths [batch] int32 and return
probabilities [batch, num_labels] float32; `batch` is always a dynamic axis,
`length` too unless the trace fixed it (`trace.Traced.length`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata

FORMATS = ("onnx", "stablehlo")
MODEL_FILES = {"onnx": "model.onnx", "stablehlo": "model.stablehlo"}
INPUTS = ("tokens", "lengths")
OUTPUT = "probabilities"
ONNX_OPSET = 23  # jax2onnx's default; onnxruntime >= 1.24 runs it
# The platforms a StableHLO artefact is lowered for (it runs on any of them).
STABLEHLO_PLATFORMS = ("cpu", "cuda")


def version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def versions(fmt: str) -> dict:
  """The versions of the packages that made (and, for ONNX, check) the export."""
  names = ["textclf_jax", "jax", "jaxlib", "flax"]
  names += ["jax2onnx", "onnx", "onnxruntime"] if fmt == "onnx" else []
  return {name: version(name) for name in names}


def check_available(fmt: str):
  """Raises UsageError naming the extra to install when `fmt`'s packages are missing."""
  from textclf_jax.errors import UsageError
  if fmt == "onnx":
    missing = [p for p in ("jax2onnx", "onnxruntime") if version(p) is None]
    if missing:
      raise UsageError(f"--format onnx needs {' and '.join(missing)}: "
                       "pip install 'textclf_jax[export]'")


@contextlib.contextmanager
def _symbolic_dims_named():
  """While converting: onnx_ir shapes accept JAX's symbolic dimensions, by name.

  Several jax2onnx 0.17 lowerings (lax.pad, rem, clamp, select_n, copy) give
  onnx_ir.Shape the output shape as JAX has it; a symbolic dimension there ('batch',
  'length + 4') fails int(). It is named instead, as jax2onnx's own shape stamping
  names it (str of the dimension): a label on the graph, not a computation.
  """
  import jax
  import onnx_ir._core as core
  original = core._maybe_convert_to_symbolic_dim

  def convert(dim):
    if jax.export.is_symbolic_dim(dim):
      return core.SymbolicDim(str(dim))
    return original(dim)

  core._maybe_convert_to_symbolic_dim = convert
  try:
    yield
  finally:
    core._maybe_convert_to_symbolic_dim = original


def write_onnx(traced, file: str):
  """Converts the traced function (lax primitives only) to an ONNX file; returns the opset."""
  import logging

  from jax2onnx import to_onnx

  from textclf_jax.serve.export.trace import plain_function
  # onnx_ir warns about every intermediate value whose shape it leaves unnamed.
  logging.getLogger("onnx_ir").setLevel(logging.ERROR)
  try:
    with _symbolic_dims_named():
      proto = to_onnx(plain_function(traced), list(traced.specs), model_name="textclf",
                      opset=ONNX_OPSET, input_names=list(INPUTS), output_names=[OUTPUT])
  except Exception as e:  # noqa: BLE001 (jax2onnx raises many types for what it lacks)
    from textclf_jax.errors import UsageError
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    raise UsageError(f"--format onnx: jax2onnx {version('jax2onnx')} cannot express this "
                     f"model ({type(e).__name__}: {first}); nothing was written. "
                     "--format stablehlo exports any model JAX runs") from None
  with open(file, "wb") as f:
    f.write(proto.SerializeToString())
  return ONNX_OPSET


def write_stablehlo(traced, file: str):
  """`jax.export` of the traced function, serialized (parameters are constants in it)."""
  import jax
  exported = jax.export.export(jax.jit(traced.fn), platforms=STABLEHLO_PLATFORMS)(
      *traced.specs)
  with open(file, "wb") as f:
    f.write(exported.serialize())
  return {"platforms": list(exported.platforms),
          "calling_convention_version": exported.calling_convention_version}


def write(fmt: str, traced, file: str) -> dict:
  """Writes the model file; returns the format's own manifest fields."""
  if fmt == "onnx":
    return {"opset": write_onnx(traced, file)}
  return write_stablehlo(traced, file)

"""The function an export holds, traced once with symbolic shapes.

`inference_fn(model, temperature, multi_label)`: tokens [B, L] int32, lengths [B]
int32 -> probabilities [B, C] float32: the model in eval mode (no dropout), its
logits as float32 divided by the temperature, then softmax (single-label) or sigmoid
(multi-label). With T = 1 that is `Steps.predict_fn` op for op.

`trace` traces it with a symbolic batch axis and, where the model allows, a symbolic
length axis (`jax.export.symbolic_shape`); a model that branches on the length (a
chunked one) is traced at one fixed length instead. `plain_function` turns the
traced jaxpr into a function of lax primitives only, for the ONNX converter: the
custom-gradient wrappers (the models' hand-written backward passes, the group
code's per-member convolution) and nested jits are inlined: inference needs their
primal bodies only, and jax2onnx 0.17 has no lowering for custom_vmap_call. Binding
the primitives directly also keeps jax2onnx's patched Flax layers and jnp.arange
(which cannot index a symbolic-length range) out of the trace.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Primitives whose body is inlined, and the parameter that holds it.
INLINED = {"custom_vjp_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
           "custom_vmap_call": "call", "pjit": "jaxpr", "jit": "jaxpr",
           "closed_call": "call_jaxpr", "core_call": "call_jaxpr"}


def export_model(steps, state, dense: bool = True):
  """The run's model (its compute dtype) from host copies of `state`'s parameters.

  dense: CNN modules take the dense convolution path at every length (the same
  function as the sparse-backward one, whose choice compares the batch length with
  a constant and so cannot be traced with a symbolic length).
  """
  params = jax.tree.map(np.asarray, state["params"])
  frozen = jax.tree.map(np.asarray, state["frozen"])
  model = steps.model(params, frozen)
  if dense:
    for _, module in nnx.iter_modules(model):
      if hasattr(module, "conv_backward"):
        module.conv_backward = "dense"
  return model


def inference_fn(model, temperature, multi_label: bool):
  """(tokens [B, L] int32, lengths [B] int32) -> probabilities [B, C] float32.

  temperature: None or 1 (none), a float, or one float per label (multi-label).
  """
  t = None if temperature is None else np.asarray(temperature, np.float32)
  if t is not None and np.all(t == 1.0):
    t = None

  def probabilities(tokens, lengths):
    logits = model(tokens, lengths).astype(jnp.float32)
    if t is not None:
      logits = logits / t
    return jax.nn.sigmoid(logits) if multi_label else jax.nn.softmax(logits)

  return probabilities


@dataclasses.dataclass
class Traced:
  """A traced inference function: its jaxpr, its argument specs, its length axis."""
  fn: object  # the Python function that was traced
  jaxpr: object  # ClosedJaxpr
  specs: tuple  # (tokens, lengths) jax.ShapeDtypeStruct, symbolic batch
  length: int | None  # None: symbolic; else every batch is padded to this length
  why_fixed: str = ""  # why the length axis could not be symbolic


def _specs(length: int | None) -> tuple:
  if length is None:
    batch, length = jax.export.symbolic_shape("batch, length")
  else:
    (batch,) = jax.export.symbolic_shape("batch")
  return (jax.ShapeDtypeStruct((batch, length), jnp.int32),
          jax.ShapeDtypeStruct((batch,), jnp.int32))


def trace(fn, fixed_length: int) -> Traced:
  """Traces `fn` with a symbolic length if it can be, else at `fixed_length`."""
  specs = _specs(None)
  try:
    return Traced(fn, jax.make_jaxpr(fn)(*specs), specs, None)
  except Exception as e:  # noqa: BLE001 (the model needs a concrete length)
    why = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
  specs = _specs(fixed_length)
  return Traced(fn, jax.make_jaxpr(fn)(*specs), specs, fixed_length, why)


def _evaluate(closed, *args):
  """Evaluates a ClosedJaxpr, binding its primitives one by one (see the module doc)."""
  from jax.extend import core as jax_core
  jaxpr, env = closed.jaxpr, {}

  def read(v):
    return v.val if isinstance(v, jax_core.Literal) else env[v]

  env.update(zip(jaxpr.constvars, closed.consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    values = [read(v) for v in eqn.invars]
    name = eqn.primitive.name
    if name in INLINED:
      outs = _evaluate(eqn.params[INLINED[name]], *values)
    else:
      with eqn.ctx.manager:
        outs = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
      if not eqn.primitive.multiple_results:
        outs = [outs]
    env.update(zip(eqn.outvars, outs))
  return [read(v) for v in jaxpr.outvars]


def plain_function(traced: Traced):
  """(tokens, lengths) -> probabilities, made of lax primitives only (see the module doc)."""
  def probabilities(tokens, lengths):
    (out,) = _evaluate(traced.jaxpr, tokens, lengths)
    return out
  return probabilities

"""`per_member`: code that runs once per member under a group's vmapped member axis.

vmap rewrites a function for a batch of members, and XLA then compiles and fuses
that batched program its own way: a grouped convolution where a member had a
plain one (1.5-4x slower per member on CPU), a [K] vector of bias-correction
factors where a member had a scalar (so division becomes multiplication by a
reciprocal, and a few parameters round differently). Code wrapped here runs, for
each member, exactly the computation of a run made alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

# Up to this many members the body is unrolled, member by member; past it, it is
# vmapped as usual (the program would grow too large).
MAX_UNROLLED_MEMBERS = 32


def per_member(fn):
  """`fn` (pytrees in, a pytree out) that, vmapped, runs once per member.

  Under vmap this calls `fn` on each member's slice of the batched arguments
  (unbatched ones are passed whole) and stacks the results on a leading axis.
  Not differentiable by JAX: use it in custom VJPs or after the gradient.
  """
  wrapped = custom_vmap(fn)

  @wrapped.def_vmap
  def _rule(axis_size, in_batched, *args):
    if axis_size > MAX_UNROLLED_MEMBERS:
      axes = tuple(jax.tree.map(lambda b: 0 if b else None, batched) for batched in in_batched)
      out = jax.vmap(fn, in_axes=axes)(*args)
    else:
      outs = [wrapped(*[jax.tree.map(lambda a, b, i=i: a[i] if b else a, arg, batched)
                        for arg, batched in zip(args, in_batched)])
              for i in range(axis_size)]
      out = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return out, jax.tree.map(lambda _: True, out)

  return wrapped

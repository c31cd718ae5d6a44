"""A frozen encoder's token states of the training texts, computed once (config.encoder_cache).

With embedding=contextual and a frozen encoder (encoder_trainable False) the encoder's
states of a text are the same every epoch (ContextualEmbeddings has no dropout), yet
running it is most of a step's cost. `attach` computes them for the TRAIN split before
the first epoch, with the frozen params of the initial train state, in the eval batcher's
length-sorted batches (deterministic: a resumed run recomputes the same bits), and keeps
them on the host as a Ragged float32 array: per text its lengths[i] token rows of
ContextualEmbeddings.cached ([H] each, or [L + 1, H] for encoder_layers=mix, whose
ScalarMix stays trainable). Training batches then carry them ("states", gathered and
zero-padded by Batcher.make_batch) and the model reads them instead of the encoder.
Dev/test evaluation, `eval` and `predict` still run the encoder.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from textclf_jax.data.batching import Batcher, Encoded, Ragged
from textclf_jax.models import MODELS
from textclf_jax.runtime import parallel
from textclf_jax.training import steps as steps_lib
from textclf_jax.training.build import device_batch

MODES = ("auto", "off")


def enabled(config) -> bool:
  """Whether `config`'s training reads cached encoder states: encoder_cache auto with a
  frozen contextual encoder under a model that reads them (`reads_states`)."""
  return (config.get("embedding") == "contextual" and not config.get("encoder_trainable", False)
          and config.get("encoder_cache", "auto") == "auto"
          and getattr(MODELS.get(config.get("model")), "reads_states", False))


def compute(steps: steps_lib.Steps, state: dict, data: Encoded, batcher: Batcher) -> Ragged:
  """The encoder's cached states of every text of `data` (`ContextualEmbeddings.cached`
  under `state`'s params, in `steps`' compute dtype), as float32 on the host."""
  mesh = steps.mesh

  def states_of(state, tokens):
    model = steps.model(state["params"], state["frozen"])
    return model.embed.cached(tokens).astype(jnp.float32)

  run = jax.jit(states_of, in_shardings=(steps.state_sharding, parallel.data_sharding(mesh)),
                out_shardings=parallel.replicated(mesh))  # every process gets every row
  cache = None
  for index in batcher.eval_plan(data):
    out = np.asarray(run(state, device_batch(batcher, data, index, mesh)["tokens"]))
    if cache is None:
      cache = Ragged.zeros(data.lengths, out.shape[2:])
    cache.put(index, out)
  return cache


def attach(config, steps: steps_lib.Steps, state: dict, data: Encoded, batcher: Batcher,
           announce: bool = True) -> Encoded:
  """`data` (the train split) with its cached encoder states when `enabled(config)`
  (printing one line: size and CPU seconds), else `data` as is."""
  if not enabled(config) or not len(data):
    return data
  cpu, wall = time.process_time(), time.time()
  cache = compute(steps, state, data, batcher)
  if announce and parallel.is_main_process():
    shape = " x ".join(map(str, cache.values.shape[1:]))
    print(f"[textclf] encoder cache: {len(data)} train texts, {len(cache.values)} tokens x "
          f"[{shape}] float32 = {cache.nbytes / 2 ** 20:.1f} MiB on the host, computed in "
          f"{time.process_time() - cpu:.1f} CPU s ({time.time() - wall:.1f} s wall)",
          flush=True)
  return dataclasses.replace(data, states=cache)

"""Integrated gradients through a pretrained encoder (model=transformer, or a CNN / LSTM /
hybrid reading embedding=contextual), over subword pieces, and their sum per word.

The path runs over the encoder's word embeddings: x [L, H] is the word-embedding lookup
of a text's pieces, before the position and token-type embeddings and the embedding
LayerNorm are added; the baseline x' = 0 keeps those (and the attention mask), so it is
"the same positions with no words". Everything after the lookup (the encoder, then the
pooled head or the CNN / LSTM over its states) is differentiated, frozen or not. The
attribution of piece l to a logit F is, as in integrated.py,

    a_l = sum_h x[l, h] * integral_0^1 dF/dx[l, h] (alpha * x) d alpha,

and a word's attribution is the sum of its pieces' (`merge_words`): completeness holds
for the words as for the pieces. [CLS] and [SEP] (<s>, </s>) are pieces of the input
like any other and are kept as words of their own, so the words' attributions still sum
to F(x) - F(x').
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textclf_jax.models.encoders import classifier
from textclf_jax.serve.explain.integrated import Attributor

BASELINE = ("zero word embeddings (positions, token types and the attention mask kept), "
            "through the encoder")


@functools.partial(jax.jit, static_argnums=(0,))
def _word_vectors(graphdef, params, frozen, tokens):
  """tokens [L] (the run's ids, 0 = padding) -> the encoder's word embeddings [L, H]."""
  model = nnx.merge(graphdef, params, frozen)
  encoder = classifier.encoder_of(model)
  ids = classifier.to_model_ids(tokens[None], encoder.cfg.pad_token_id)
  return encoder.embeddings.word_embeddings(ids)[0].astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(0,))
def _logits(graphdef, params, frozen, x, tokens, lengths):
  """x [B, L, H] word vectors, tokens [B, L], lengths [B] -> logits [B, C] (eval mode)."""
  model = nnx.merge(graphdef, params, frozen)
  return classifier.logits_from_word_vectors(model, x, tokens, lengths).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(0,))
def _path_gradients(graphdef, params, frozen, x, tokens, length, targets, alphas, weights):
  """x [L, H], tokens [L], length [], targets [K], alphas/weights [S] -> the weighted path
  integral of the gradient for each target: [K, L, H] (integrated._path_gradients)."""
  model = nnx.merge(graphdef, params, frozen)
  k, s = targets.shape[0], alphas.shape[0]
  rows = jnp.tile(alphas, k)[:, None, None] * x[None]  # [K * S, L, H], target-major
  row_targets = jnp.repeat(targets, s)
  row_tokens = jnp.broadcast_to(tokens[None], (k * s, tokens.shape[0]))
  lengths = jnp.full((k * s,), length, jnp.int32)

  def selected(rows):
    logits = classifier.logits_from_word_vectors(model, rows, row_tokens, lengths)
    return jnp.sum(jnp.take_along_axis(logits.astype(jnp.float32), row_targets[:, None], axis=1))

  grads = jax.grad(selected)(rows).reshape(k, s, *x.shape)
  return jnp.einsum("s,ksle->kle", weights, grads)


class EncoderAttributor(Attributor):
  """Integrated gradients over an encoder's word embeddings (see the module doc)."""

  baseline = BASELINE

  def attribute(self, ids: np.ndarray, length: int, targets) -> dict:
    """As Attributor.attribute: {attributions [K, length] (per piece), logits [C],
    baseline_logits [C]} for ids [L] int32 (0-padded) of which `length` are the text."""
    tokens = jnp.asarray(ids, jnp.int32)
    x = _word_vectors(self.graphdef, self.params, self.frozen, tokens)
    both = np.asarray(_logits(self.graphdef, self.params, self.frozen,
                              jnp.stack([x, jnp.zeros_like(x)]), jnp.stack([tokens, tokens]),
                              jnp.asarray([length, length], jnp.int32)))
    integrated = _path_gradients(self.graphdef, self.params, self.frozen, x, tokens,
                                 jnp.asarray(length, jnp.int32),
                                 jnp.asarray(targets, jnp.int32), jnp.asarray(self.alphas),
                                 jnp.asarray(self.weights))
    per_piece = np.asarray(jnp.einsum("le,kle->kl", x, integrated), np.float64)
    return {"attributions": per_piece[:, :length], "logits": both[0],
            "baseline_logits": both[1]}


def merge_words(starts: list, attributions) -> list:
  """Per-piece attributions [n] and `starts` (whether piece i begins a word, i < n) ->
  one sum per word, in order (a piece that begins no word joins the word before it)."""
  out = []
  for begins, value in zip(starts, attributions):
    if begins or not out:
      out.append(0.0)
    out[-1] += float(value)
  return out


def word_strings(pieces: list, starts: list, spans: list, text: str) -> list:
  """One string per word: the text the word's pieces cover (their character offsets),
  or, for a piece with no span in the text ([CLS], [SEP]), the piece itself."""
  words, covered = [], []
  for piece, begins, (lo, hi) in zip(pieces, starts, spans):
    if begins or not words:
      words.append(piece)
      covered.append(None)
    if hi > lo:
      covered[-1] = (lo, hi) if covered[-1] is None else (covered[-1][0], hi)
  return [text[c[0]:c[1]] if c else w for w, c in zip(words, covered)]

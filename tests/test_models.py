"""Model shapes and masking: padding must never change a prediction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from textclf_jax.models import CNNLSTM, Embeddings, KimCNN, LSTMClassifier
from textclf_jax.models.lstm import LSTMLayer, reverse_within_length

VOCAB, DIM, CLASSES = 40, 8, 3


def _model(cls, kind="rand", **kw):
  vectors = np.random.default_rng(0).normal(size=(VOCAB, DIM)).astype(np.float32)
  emb = Embeddings(VOCAB, DIM, kind, None if kind == "rand" else vectors, rngs=nnx.Rngs(0))
  return cls(emb, CLASSES, rngs=nnx.Rngs(1), **kw)


def _tokens(lengths, width):
  rng = np.random.default_rng(2)
  tokens = np.zeros((len(lengths), width), np.int32)
  for i, l in enumerate(lengths):
    tokens[i, :l] = rng.integers(2, VOCAB, l)
  return jnp.asarray(tokens), jnp.asarray(lengths, jnp.int32)


MODELS = [(KimCNN, {}), (KimCNN, dict(conv_backward="sparse")), (LSTMClassifier, {}), (LSTMClassifier, dict(bidirectional=True, layers=2)),
          (CNNLSTM, {}), (CNNLSTM, dict(bidirectional=True))]


@pytest.mark.parametrize("cls, kw, kind", [(c, kw, k) for c, kw in MODELS for k in (
    ["rand", "static", "non-static", "multichannel"] if c is KimCNN else ["multichannel"])])
def test_output_shape(cls, kw, kind):
  tokens, lengths = _tokens([7, 3, 1, 12], 12)
  model = _model(cls, kind, **kw)
  assert model(tokens, lengths).shape == (4, CLASSES)
  assert model(tokens, lengths, jax.random.PRNGKey(0)).shape == (4, CLASSES)


@pytest.mark.parametrize("cls, kw", MODELS)
def test_padding_does_not_change_logits(cls, kw):
  """The same texts padded to 12 or to 32 positions give the same logits."""
  model = _model(cls, **kw)
  tokens, lengths = _tokens([7, 3, 1, 12, 5], 12)
  wide = jnp.pad(tokens, ((0, 0), (0, 20)))
  np.testing.assert_allclose(model(tokens, lengths), model(wide, lengths), atol=1e-5)


@pytest.mark.parametrize("cls, kw", [MODELS[0], MODELS[-1]])
def test_each_row_independent_of_batch(cls, kw):
  model = _model(cls, **kw)
  tokens, lengths = _tokens([7, 3, 1, 12], 12)
  batch = model(tokens, lengths)
  for i in range(4):
    alone = model(tokens[i:i + 1, :int(max(lengths[i], 5))], lengths[i:i + 1])
    np.testing.assert_allclose(batch[i:i + 1], alone, atol=1e-5)


def test_lstm_final_state_is_state_at_last_real_token():
  layer = LSTMLayer(DIM, 6, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, DIM))
  lengths = jnp.array([4, 9])
  outputs, final = layer(x, lengths)
  _, final_short = layer(x[:1, :4], jnp.array([4]))
  np.testing.assert_allclose(final[0], final_short[0], atol=1e-6)
  np.testing.assert_allclose(final[0], outputs[0, 3], atol=1e-6)
  assert (outputs[0, 4:] == 0).all()


def test_reverse_within_length():
  x = jnp.arange(10).reshape(2, 5)[..., None]
  out = reverse_within_length(x, jnp.array([3, 5]))[..., 0]
  assert out.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
  time_major = reverse_within_length(jnp.swapaxes(x, 0, 1), jnp.array([3, 5]), axis=0)
  assert jnp.swapaxes(time_major, 0, 1)[..., 0].tolist() == out.tolist()


def test_bilstm_final_only_matches_outputs():
  """`final_only` (no per-step outputs stored) gives the same final state and
  gradients as the full encoder, and the backward direction's final state is
  its state after reading each row's first token."""
  from textclf_jax.models.lstm import LSTMEncoder
  encoder = LSTMEncoder(DIM, 6, layers=2, bidirectional=True, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 8, DIM))
  lengths = jnp.array([8, 5, 1])
  outputs, final = encoder(x, lengths)
  none, final_only = encoder(x, lengths, final_only=True)
  assert none is None and outputs.shape == (3, 8, 12)
  np.testing.assert_allclose(final_only, final, atol=1e-6)
  # Forward half: the output at the last real token; backward half: at the first.
  np.testing.assert_allclose(final[:, :6], outputs[jnp.arange(3), lengths - 1, :6], atol=1e-6)
  np.testing.assert_allclose(final[:, 6:], outputs[:, 0, 6:], atol=1e-6)
  graphdef, params = nnx.split(encoder)

  def loss(params, final_only):
    out = nnx.merge(graphdef, params)(x, lengths, final_only=final_only)[1]
    return jnp.sum(jnp.sin(out))

  got, want = jax.grad(loss)(params, True), jax.grad(loss)(params, False)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-5)


def test_static_embeddings_are_not_params():
  model = _model(KimCNN, "static")
  params = nnx.state(model, nnx.Param)
  assert "embed" not in params
  multi = _model(KimCNN, "multichannel")
  assert "trainable" in nnx.state(multi, nnx.Param)["embed"]


def test_cnn_short_text_shorter_than_filter():
  model = _model(KimCNN)
  tokens, lengths = _tokens([1, 2], 5)
  assert np.isfinite(np.asarray(model(tokens, lengths))).all()


def test_static_without_vectors_is_an_error():
  """Named by the config check, once per command (the model takes its config as valid)."""
  from textclf_jax import config as config_lib
  from textclf_jax.training import checks
  config = config_lib.load_preset("cnn")
  with config.unlocked():
    config.embedding, config.vectors = "static", ""
  assert any("needs pretrained vectors" in p for p in checks.problems(config))


def test_lstm_recurrence_vjp_matches_autodiff():
  """The hand-written VJP of the fused recurrence equals autodiff of its scan."""
  from textclf_jax.models.lstm import _recurrence_fwd, recurrence, time_mask
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  z = tuple(jax.random.normal(keys[0], (2, 7, 3, 4 * 5)))  # G x [L, B, 4H]
  kernel = jax.random.normal(keys[1], (2, 5, 4 * 5)) * 0.5
  mask = time_mask(7, jnp.array([7, 4, 1]))
  weights = jax.random.normal(keys[2], (2, 7, 3, 5)), jax.random.normal(keys[3], (2, 3, 5))

  def loss(f, z, kernel):
    outputs, final = f(z, mask, kernel)
    return (sum(jnp.sum(o * w) for o, w in zip(outputs, weights[0]))
            + jnp.sum(jnp.sin(final) * weights[1]))

  def final_only_loss(f, z, kernel):
    return jnp.sum(jnp.sin(f(z, mask, kernel)) * weights[1])

  autodiff = lambda z, m, k: _recurrence_fwd(z, m, k, 1)[0]
  autodiff_final = lambda z, m, k: _recurrence_fwd(z, m, k, 1, False)[0]
  for got, want in [
      (jax.grad(lambda *a: loss(recurrence, *a), argnums=(0, 1))(z, kernel),
       jax.grad(lambda *a: loss(autodiff, *a), argnums=(0, 1))(z, kernel)),
      (jax.grad(lambda *a: final_only_loss(
          lambda z, m, k: recurrence(z, m, k, 1, False), *a), argnums=(0, 1))(z, kernel),
       jax.grad(lambda *a: final_only_loss(autodiff_final, *a), argnums=(0, 1))(z, kernel))]:
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)

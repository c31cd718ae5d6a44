"""conv_pool's sparse backward pass: the same features and gradients as autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from textclf_jax.models import Embeddings, KimCNN
from textclf_jax.models.conv_pool import conv_relu_max, window_scores


def _dense(x, kernels, biases, lengths):
  """Autodiff's version: relu(conv + bias), masked, max over windows."""
  pooled = []
  for kernel, bias in zip(kernels, biases):
    width = kernel.shape[0]
    h = jax.nn.relu(window_scores(x, kernel, width) + bias)
    valid = jnp.arange(h.shape[1])[None, :] < (lengths + width - 1)[:, None]
    pooled.append(jnp.max(jnp.where(valid[..., None], h, 0.0), axis=1))
  return jnp.concatenate(pooled, axis=-1)


def _inputs(widths, lengths, length=11, dim=6, filters=5, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  lengths = jnp.asarray(lengths, jnp.int32)
  x = jax.random.normal(keys[0], (len(lengths), length, dim))
  x = jnp.where(jnp.arange(length)[None, :, None] < lengths[:, None, None], x, 0.0)
  kernels = tuple(jax.random.normal(jax.random.fold_in(keys[1], w), (w, dim, filters)) * 0.5
                  for w in widths)
  # Biases of both signs: some filters are inactive (relu 0) for some texts.
  biases = tuple(jax.random.normal(jax.random.fold_in(keys[2], w), (filters,))
                 for w in widths)
  weights = jax.random.normal(keys[3], (len(lengths), filters * len(widths)))
  return x, kernels, biases, lengths, weights


@pytest.mark.parametrize("widths", [(3, 4, 5), (1, 2), (7,)])
def test_features_and_gradients_match_autodiff(widths):
  # Full length, shorter than the widest filter, one token, and an empty text.
  x, kernels, biases, lengths, weights = _inputs(widths, [11, 2, 1, 0, 6])

  def loss(f, x, kernels, biases):
    return jnp.sum(jnp.sin(f(x, kernels, biases, lengths)) * weights)

  want = _dense(x, kernels, biases, lengths)
  got = conv_relu_max(x, kernels, biases, lengths)
  np.testing.assert_array_equal(got, want)  # same windows, same sums: bit for bit
  assert (got[3] == jnp.concatenate([jax.nn.relu(b) if w > 1 else jnp.zeros_like(b)
                                     for w, b in zip(widths, biases)])).all()
  grads_want = jax.grad(lambda *a: loss(_dense, *a), argnums=(0, 1, 2))(x, kernels, biases)
  grads_got = jax.grad(lambda *a: loss(conv_relu_max, *a), argnums=(0, 1, 2))(x, kernels, biases)
  for g, w in zip(jax.tree.leaves(grads_got[1:]), jax.tree.leaves(grads_want[1:])):
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
  # d x at the texts' tokens. Padding positions inside windows that overlap a
  # text get gradient both ways (split differently where all-padding windows
  # tie); the embedding's padding mask discards it.
  real = (jnp.arange(11)[None, :] < lengths[:, None])[..., None]
  np.testing.assert_allclose(jnp.where(real, grads_got[0], 0), jnp.where(real, grads_want[0], 0),
                             atol=1e-5, rtol=1e-5)


def test_under_vmap_and_jit_per_member_parameters():
  """A group (textclf_jax.training.group) vmaps the model over members with their own parameters and data."""
  members = [_inputs((3, 4), [11, 5, 2], seed=s) for s in range(3)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)

  def loss(f, x, kernels, biases, lengths, weights):
    return jnp.sum(jnp.sin(f(x, kernels, biases, lengths)) * weights)

  grad = lambda f: jax.jit(jax.vmap(jax.grad(lambda *a: loss(f, *a), argnums=(0, 1, 2))))
  got, want = grad(conv_relu_max)(*stacked), grad(_dense)(*stacked)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["non-static", "multichannel"])
def test_kim_cnn_sparse_backward_equals_dense(kind):
  vocab, dim = 30, 8
  vectors = np.random.default_rng(0).normal(size=(vocab, dim)).astype(np.float32)
  models = {mode: KimCNN(Embeddings(vocab, dim, kind, vectors, rngs=nnx.Rngs(0)), 3,
                         conv_backward=mode, rngs=nnx.Rngs(1)) for mode in ("dense", "sparse")}
  rng = np.random.default_rng(1)
  lengths = jnp.asarray([9, 4, 1], jnp.int32)
  tokens = jnp.asarray(rng.integers(2, vocab, (3, 9)), jnp.int32)
  tokens = jnp.where(jnp.arange(9)[None] < lengths[:, None], tokens, 0)
  key = jax.random.PRNGKey(3)

  def grads(model):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p, rest)(tokens, lengths, key)))(params)

  assert models["sparse"].sparse_backward(9) and not models["dense"].sparse_backward(9)
  for g, w in zip(jax.tree.leaves(grads(models["sparse"])), jax.tree.leaves(grads(models["dense"]))):
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


def test_auto_chooses_by_length_and_bad_value_is_an_error():
  emb = Embeddings(10, 4, "rand", rngs=nnx.Rngs(0))
  model = KimCNN(emb, 2, conv_backward="auto", rngs=nnx.Rngs(0))
  assert not model.sparse_backward(64) and model.sparse_backward(128)
  from textclf_jax import config as config_lib
  from textclf_jax.training import checks
  config = config_lib.load_preset("kim")
  with config.unlocked():
    config.conv_backward = "fast"
  assert any(p.startswith("config.conv_backward='fast'") for p in checks.problems(config))


@pytest.mark.parametrize("unroll_limit", [32, 1])
def test_per_member_convolution_equals_vmapped_autodiff(monkeypatch, unroll_limit):
  """Under vmap, valid_conv runs each member's own convolution (or, past the
  unroll limit, vmap's grouped one); values and gradients are autodiff's."""
  from textclf_jax.models import member_axis
  from textclf_jax.models import conv_pool
  monkeypatch.setattr(member_axis, "MAX_UNROLLED_MEMBERS", unroll_limit)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  padded = jax.random.normal(keys[0], (3, 2, 9, 4))  # [K, B, P, D]
  kernel = jax.random.normal(keys[1], (3, 3, 4, 5))  # [K, w, D, F]
  weights = jax.random.normal(keys[2], (3, 2, 7, 5))

  def loss(conv, padded, kernel, weights):
    return jnp.sum(jnp.sin(conv(padded, kernel)) * weights)

  plain = lambda p, k: jax.lax.conv_general_dilated(p, k, (1,), "VALID",
                                                   dimension_numbers=("NWC", "WIO", "NWC"))
  for shared_kernel in (False, True):  # a kernel without the member axis too
    in_axes = (0, None if shared_kernel else 0, 0)
    k = kernel[0] if shared_kernel else kernel
    got = jax.jit(jax.vmap(jax.value_and_grad(lambda *a: loss(conv_pool.valid_conv, *a),
                                              argnums=(0, 1)), in_axes))(padded, k, weights)
    want = jax.vmap(jax.value_and_grad(lambda *a: loss(plain, *a), argnums=(0, 1)),
                    in_axes)(padded, k, weights)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)

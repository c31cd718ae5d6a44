"""Flax NNX BERT, RoBERTa and DistilBERT encoders: the pretrained transformers that
Hugging Face-format folders hold (hf_load.py reads them into these modules).

One module serves the three: post-LN layers (attention, residual, LayerNorm; dense, GELU,
dense, residual, LayerNorm), absolute position embeddings, and an embedding LayerNorm.
They differ only in the embeddings: RoBERTa numbers positions from padding_idx + 1 and has
one token type, DistilBERT has no token types. The forward pass returns every hidden state
[L + 1, B, T, H] (the embeddings' output, then each layer's) so a caller can take one
layer, the mean of the last k or a learned mix (pooling.py).

Params are float32; `dtype` is the compute dtype (bfloat16 halves the activations' memory).
Softmax and LayerNorm statistics are computed in float32 whatever the dtype. On GPUs XLA
multiplies float32 matrices in TF32 by default; parity with PyTorch to ~1e-5 there needs
`jax.default_matmul_precision("highest")` (on CPU float32 is float32).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

MODEL_TYPES = ("bert", "roberta", "distilbert")
# HF's names (transformers.activations.ACT2FN) for the activations these checkpoints use.
# "gelu" is the exact erf form; "gelu_new" / "gelu_pytorch_tanh" the tanh approximation.
ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """The fields of an HF config.json that fix the encoder's shape (BERT's names;
  hf_load.config_from_dict translates DistilBERT's)."""

  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int = 2  # 0: no token-type embeddings (DistilBERT)
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  model_type: str = "bert"
  pad_token_id: int = 0
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1

  def __post_init__(self):
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f"model_type={self.model_type!r}: expected one of {MODEL_TYPES}")
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(f"hidden_act={self.hidden_act!r}: expected one of {tuple(ACTIVATIONS)}")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                       f"num_attention_heads={self.num_attention_heads}")

  @property
  def position_offset(self) -> int:
    """RoBERTa's first position id is padding_idx + 1; BERT's is 0."""
    return self.pad_token_id + 1 if self.model_type == "roberta" else 0

  @property
  def max_tokens(self) -> int:
    """The longest input (special tokens included) that has position embeddings."""
    return self.max_position_embeddings - self.position_offset


def _dense(cfg, din, dout, dtype, rngs):
  return nnx.Linear(din, dout, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def _layer_norm(cfg, rngs):
  # dtype None: statistics and output in the input's promoted dtype with float32 params,
  # i.e. float32; the caller casts back to the compute dtype.
  return nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, param_dtype=jnp.float32,
                       rngs=rngs)


class Embeddings(nnx.Module):
  """ids [B, T], mask [B, T], token types [B, T] or None -> [B, T, H]. `word_vectors`
  [B, T, H], when given, stand in for the word-embedding lookup of `ids` (explanations
  take gradients with respect to them); positions still come from `ids`."""

  def __init__(self, cfg: EncoderConfig, dtype, *, rngs: nnx.Rngs):
    self.cfg, self.dtype = cfg, dtype
    embed = lambda n: nnx.Embed(n, cfg.hidden_size, dtype=dtype, param_dtype=jnp.float32,
                                rngs=rngs)
    self.word_embeddings = embed(cfg.vocab_size)
    self.position_embeddings = embed(cfg.max_position_embeddings)
    self.token_type_embeddings = embed(cfg.type_vocab_size) if cfg.type_vocab_size else None
    self.layer_norm = _layer_norm(cfg, rngs)
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def position_ids(self, ids):
    """BERT: 0..T-1. RoBERTa (HF's create_position_ids_from_input_ids): padding_idx + 1
    onwards over the non-pad tokens, padding_idx on pad tokens."""
    if self.cfg.model_type != "roberta":
      return jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
    not_pad = (ids != self.cfg.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(not_pad, axis=1) * not_pad + self.cfg.pad_token_id

  def __call__(self, ids, token_type_ids=None, *, rngs=None, word_vectors=None):
    words = self.word_embeddings(ids) if word_vectors is None else word_vectors
    x = words + self.position_embeddings(self.position_ids(ids))
    if self.token_type_embeddings is not None:
      types = jnp.zeros_like(ids) if token_type_ids is None else token_type_ids
      x = x + self.token_type_embeddings(types)
    x = self.layer_norm(x.astype(jnp.float32)).astype(self.dtype)
    return self.dropout(x, deterministic=rngs is None, rngs=rngs)


class SelfAttention(nnx.Module):
  """x [B, T, H], additive key bias [B, 1, 1, T] -> [B, T, H] (before the output dense)."""

  def __init__(self, cfg: EncoderConfig, dtype, *, rngs: nnx.Rngs):
    h = cfg.hidden_size
    self.heads, self.dtype = cfg.num_attention_heads, dtype
    self.query = _dense(cfg, h, h, dtype, rngs)
    self.key = _dense(cfg, h, h, dtype, rngs)
    self.value = _dense(cfg, h, h, dtype, rngs)
    self.dropout = nnx.Dropout(cfg.attention_probs_dropout_prob)

  def __call__(self, x, bias, *, rngs=None):
    b, t, h = x.shape
    split = lambda y: y.reshape(b, t, self.heads, h // self.heads)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    scores = jnp.einsum("bqnd,bknd->bnqk", q, k).astype(jnp.float32)
    scores = scores / math.sqrt(h // self.heads) + bias
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    probs = self.dropout(probs, deterministic=rngs is None, rngs=rngs)
    return jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, t, h)


class Layer(nnx.Module):
  """One post-LN transformer layer: x [B, T, H] -> [B, T, H]."""

  def __init__(self, cfg: EncoderConfig, dtype, *, rngs: nnx.Rngs):
    h = cfg.hidden_size
    self.dtype = dtype
    self.attention = SelfAttention(cfg, dtype, rngs=rngs)
    self.attention_output = _dense(cfg, h, h, dtype, rngs)
    self.attention_norm = _layer_norm(cfg, rngs)
    self.intermediate = _dense(cfg, h, cfg.intermediate_size, dtype, rngs)
    self.output = _dense(cfg, cfg.intermediate_size, h, dtype, rngs)
    self.output_norm = _layer_norm(cfg, rngs)
    self.act = ACTIVATIONS[cfg.hidden_act]
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def _add_norm(self, norm, y, x, rngs):
    y = self.dropout(y, deterministic=rngs is None, rngs=rngs)
    return norm((y + x).astype(jnp.float32)).astype(self.dtype)

  def __call__(self, x, bias, *, rngs=None):
    keys = [None] * 3 if rngs is None else list(jax.random.split(rngs, 3))
    a = self.attention_output(self.attention(x, bias, rngs=keys[0]))
    x = self._add_norm(self.attention_norm, a, x, keys[1])
    y = self.output(self.act(self.intermediate(x)))
    return self._add_norm(self.output_norm, y, x, keys[2])


class Encoder(nnx.Module):
  """ids [B, T] int, mask [B, T] (1 = token, 0 = padding), token types [B, T] or None
  -> hidden states [L + 1, B, T, H] in `dtype`.

  `rngs`: a PRNG key for dropout (training); None (the default) is deterministic.
  `word_vectors` [B, T, H]: in place of the word embeddings of `ids` (Embeddings).
  Padded positions get outputs too (they attend to the text), but no text position
  attends to them, so a text's outputs do not depend on how far it is padded.
  """

  def __init__(self, cfg: EncoderConfig, dtype=jnp.float32, *, rngs: nnx.Rngs):
    self.cfg, self.dtype = cfg, dtype
    self.embeddings = Embeddings(cfg, dtype, rngs=rngs)
    self.layers = nnx.List([Layer(cfg, dtype, rngs=rngs) for _ in range(cfg.num_hidden_layers)])

  @property
  def num_hidden_states(self) -> int:
    return self.cfg.num_hidden_layers + 1

  def __call__(self, ids, mask, token_type_ids=None, *, rngs=None, word_vectors=None):
    if ids.shape[1] > self.cfg.max_tokens:
      raise ValueError(f"{ids.shape[1]} tokens per text; the model has positions for "
                       f"{self.cfg.max_tokens} (max_position_embeddings="
                       f"{self.cfg.max_position_embeddings})")
    keys = ([None] * (len(self.layers) + 1) if rngs is None
            else list(jax.random.split(rngs, len(self.layers) + 1)))
    # HF's extended mask: the dtype's lowest value on padded keys, 0 elsewhere.
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
    x = self.embeddings(ids, token_type_ids, rngs=keys[0], word_vectors=word_vectors)
    states = [x]
    for layer, key in zip(self.layers, keys[1:]):
      x = layer(x, bias, rngs=key)
      states.append(x)
    return jnp.stack(states)

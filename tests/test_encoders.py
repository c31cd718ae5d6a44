"""models/encoders (BERT, RoBERTa, DistilBERT from HF-format folders) and text/subword.

The tests write tiny random models into tmp_path: with numpy + safetensors (every weight-
name style; checked against a float64 numpy forward pass written here), and with
transformers when torch and transformers are installed (checked against their forward)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

pytest.importorskip("safetensors", reason="needs the `encoders` extra (safetensors)")
pytest.importorskip("tokenizers", reason="needs the `encoders` extra (tokenizers)")

from textclf_jax.errors import ConfigError, DataError  # noqa: E402
from textclf_jax.models.encoders import (ScalarMix, cls_pool, load_config,  # noqa: E402
                                         load_encoder, mean_last, mean_pool)
from safetensors.numpy import save_file  # noqa: E402
from textclf_jax.models.encoders.hf_load import expected_weights  # noqa: E402
from textclf_jax.text.subword import SubwordTokenizer  # noqa: E402
from tiny_hf import (DIMS, TEXTS, VOCAB, bert_vocab, numpy_model,  # noqa: E402
                     roberta_tokenizer, write_json)

def reference_forward(cfg, w, ids, mask):
  """HF's BERT/RoBERTa/DistilBERT forward in float64 numpy -> [L + 1, B, T, H]."""
  w = {k: v.astype(np.float64) for k, v in w.items()}

  def norm(x, p):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + cfg.layer_norm_eps) * w[p + ".weight"] + w[p + ".bias"]

  dense = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
  if cfg.model_type == "roberta":
    keep = (ids != cfg.pad_token_id)
    pos = np.cumsum(keep, axis=1) * keep + cfg.pad_token_id
  else:
    pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
  x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
  if cfg.type_vocab_size:
    x = x + w["embeddings.token_type_embeddings.weight"][0]
  x = norm(x, "embeddings.LayerNorm")
  states, (b, t, hdim), n = [x], x.shape, cfg.num_attention_heads
  for i in range(cfg.num_hidden_layers):
    p = f"encoder.layer.{i}."
    q, k, v = (dense(x, p + "attention.self." + s).reshape(b, t, n, -1).transpose(0, 2, 1, 3)
               for s in ("query", "key", "value"))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hdim // n) + np.where(mask, 0, -1e9)[:, None, None]
    s = np.exp(s - s.max(-1, keepdims=True))
    a = (s / s.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(b, t, hdim)
    x = norm(dense(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
    y = dense(x, p + "intermediate.dense")
    y = dense(0.5 * y * (1 + erf(y / np.sqrt(2))), p + "output.dense")
    x = norm(y + x, p + "output.LayerNorm")
    states.append(x)
  return np.stack(states)


@pytest.mark.parametrize("model_type,style", [("bert", "hf"), ("bert", "st"), ("bert", "tf"),
                                              ("roberta", "hf"), ("distilbert", "distilbert")])
def test_loader_maps_every_weight_and_matches_reference(tmp_path, model_type, style):
  cfg, canon = numpy_model(str(tmp_path), model_type, style)
  model = load_encoder(str(tmp_path))
  assert load_config(str(tmp_path)) == model.cfg == cfg
  for name, (path, transpose) in expected_weights(cfg).items():
    param = model
    for p in path:
      param = param[p] if isinstance(p, int) else getattr(param, p)
    assert param.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(param[...]), canon[name].T if transpose else canon[name])
  enc = SubwordTokenizer.from_folder(str(tmp_path), 16).encode(TEXTS)
  assert enc.mask.min() == 0  # a padded batch
  ours = np.asarray(model(enc.ids, enc.mask))
  ref = reference_forward(cfg, canon, enc.ids, enc.mask.astype(bool))
  assert ours.shape == (cfg.num_hidden_layers + 1, len(TEXTS), enc.ids.shape[1], cfg.hidden_size)
  np.testing.assert_allclose(ours, ref, atol=2e-5, rtol=0)


def transformers_model(folder, model_type):
  """A random transformers BertModel / RobertaModel saved to `folder`, in eval mode."""
  torch = pytest.importorskip("torch", reason="parity with transformers needs torch (CPU)")
  transformers = pytest.importorskip("transformers", reason="parity needs transformers")
  os.makedirs(folder, exist_ok=True)
  if model_type == "roberta":
    vocab, cls = roberta_tokenizer(folder), transformers.RobertaConfig
    conf = cls(vocab_size=vocab, type_vocab_size=1, pad_token_id=1, **DIMS)
    model_cls = transformers.RobertaModel
  else:
    bert_vocab(folder)
    conf = transformers.BertConfig(vocab_size=len(VOCAB), type_vocab_size=2, **DIMS)
    model_cls = transformers.BertModel
  torch.manual_seed(0)
  model = model_cls(conf).eval()
  with torch.no_grad():  # init leaves LayerNorms at 1 / 0 and biases at 0: perturb all
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  model.save_pretrained(folder, safe_serialization=True)
  return torch, transformers, model


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_hidden_states_match_transformers(tmp_path, model_type):
  torch, _, ref_model = transformers_model(str(tmp_path), model_type)
  enc = SubwordTokenizer.from_folder(str(tmp_path), 24).encode(TEXTS)
  with torch.no_grad():
    out = ref_model(input_ids=torch.from_numpy(enc.ids.astype(np.int64)),
                    attention_mask=torch.from_numpy(enc.mask.astype(np.int64)),
                    output_hidden_states=True)
  ref = np.stack([h.numpy() for h in out.hidden_states])
  ours = np.asarray(load_encoder(str(tmp_path))(enc.ids, enc.mask))
  valid = enc.mask.astype(bool)
  np.testing.assert_allclose(ours[:, valid], ref[:, valid], atol=1e-5, rtol=0)
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)  # padded positions too


def test_token_ids_match_transformers(tmp_path):
  transformers = pytest.importorskip("transformers", reason="needs transformers")
  bert_vocab(str(tmp_path))
  theirs = transformers.BertTokenizer(os.path.join(tmp_path, "vocab.txt"))
  ours = SubwordTokenizer.from_folder(str(tmp_path), 12, max_positions=40)
  for text in TEXTS:
    ref = theirs(text, truncation=True, max_length=12)["input_ids"]
    assert ours.encode([text]).ids[0].tolist() == ref, text
  roberta_tokenizer(str(tmp_path))
  theirs = transformers.PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(tmp_path, "tokenizer.json"))
  ours = SubwordTokenizer.from_folder(str(tmp_path), 12, max_positions=40)
  for text in TEXTS:
    assert ours.encode([text]).ids[0].tolist() == theirs(text, truncation=True, max_length=12)[
        "input_ids"], text


def test_wordpiece_ids_and_padding(tmp_path):
  bert_vocab(str(tmp_path))
  tok = SubwordTokenizer.from_folder(str(tmp_path), 6, max_positions=40)
  enc = tok.encode(["Hello, world!", "Unbelievable café", "the cat sat on the mat", ""])
  ix = {t: i for i, t in enumerate(VOCAB)}
  cls, sep = ix["[CLS]"], ix["[SEP]"]
  assert enc.ids[0].tolist() == [cls, ix["hello"], ix[","], ix["world"], ix["!"], sep]
  assert enc.ids[1, :5].tolist() == [cls, ix["un"], ix["##believ"], ix["##able"], ix["cafe"]]
  assert enc.ids[2].tolist() == [cls, ix["the"], ix["cat"], ix["sat"], ix["on"], sep]  # cut
  assert enc.ids[3].tolist() == [cls, sep, 0, 0, 0, 0]
  assert enc.lengths.tolist() == [6, 6, 6, 2]
  assert enc.mask[3].tolist() == [1, 1, 0, 0, 0, 0] and enc.ids.dtype == np.int32
  assert tok.encode(["hello"], pad_to=5).ids.tolist() == [[cls, ix["hello"], sep, 0, 0]]


def test_padding_does_not_change_outputs(tmp_path):
  numpy_model(str(tmp_path), "roberta")
  model, tok = load_encoder(str(tmp_path)), SubwordTokenizer.from_folder(str(tmp_path), 30)
  alone = tok.encode(TEXTS[:1])
  batch = tok.encode(TEXTS, pad_to=30)
  n = int(alone.lengths[0])
  a = np.asarray(model(alone.ids, alone.mask))
  b = np.asarray(model(batch.ids, batch.mask))
  np.testing.assert_allclose(b[:, 0, :n], a[:, 0], atol=1e-5)
  for pooled in (lambda s, m: mean_pool(s[-1], m), lambda s, m: cls_pool(s[-1])):
    np.testing.assert_allclose(np.asarray(pooled(b, batch.mask))[0],
                               np.asarray(pooled(a, alone.mask))[0], atol=1e-5)


def test_pooling():
  rng = np.random.default_rng(0)
  states = jnp.asarray(rng.standard_normal((3, 2, 4, 5)), jnp.float32)
  mask = jnp.asarray([[1, 1, 0, 0], [1, 1, 1, 1]])
  mean = np.asarray(mean_pool(states[-1], mask))
  np.testing.assert_allclose(mean[0], np.asarray(states[-1, 0, :2]).mean(0), rtol=1e-6)
  np.testing.assert_allclose(mean[1], np.asarray(states[-1, 1]).mean(0), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(cls_pool(states[0])), np.asarray(states[0, :, 0]))
  np.testing.assert_allclose(np.asarray(mean_last(states, 2)),
                             np.asarray(states[1:]).mean(0), rtol=1e-6)
  mix = ScalarMix(3)
  np.testing.assert_allclose(np.asarray(mix(states)), np.asarray(states).mean(0), rtol=1e-5,
                             atol=1e-6)
  mix.weights[...] = jnp.log(jnp.asarray([1.0, 0.0, 3.0]) + 1e-30)
  mix.gamma[...] = 2.0
  np.testing.assert_allclose(np.asarray(mix(states)),
                             2.0 * (0.25 * np.asarray(states[0]) + 0.75 * np.asarray(states[2])),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="last 4"):
    mean_last(states, 4)


def test_bfloat16_compute_and_checkpoint(tmp_path):
  _, canon = numpy_model(str(tmp_path), "bert")
  enc = SubwordTokenizer.from_folder(str(tmp_path), 16).encode(TEXTS)
  f32 = np.asarray(load_encoder(str(tmp_path))(enc.ids, enc.mask))
  model = load_encoder(str(tmp_path), dtype=jnp.bfloat16)
  out = model(enc.ids, enc.mask)
  assert out.dtype == jnp.bfloat16 and model.embeddings.word_embeddings.embedding.dtype == jnp.float32
  assert np.abs(np.asarray(out, np.float32) - f32).max() < 0.25  # LayerNorm'd: values ~ 1
  from safetensors.flax import save_file as save_jax  # a bfloat16 checkpoint: params float32
  save_jax({k: jnp.asarray(v, jnp.bfloat16) for k, v in canon.items()},
           os.path.join(tmp_path, "model.safetensors"))
  table = load_encoder(str(tmp_path)).embeddings.word_embeddings.embedding
  assert table.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(table[...]), np.asarray(
      jnp.asarray(canon["embeddings.word_embeddings.weight"], jnp.bfloat16), np.float32))


def test_errors_name_the_file_and_key(tmp_path):
  folder = str(tmp_path / "m")
  numpy_model(folder, "bert")
  config, weights = os.path.join(folder, "config.json"), os.path.join(folder, "model.safetensors")
  with pytest.raises(DataError, match="no-such-dir: not a model folder"):
    load_encoder(str(tmp_path / "no-such-dir"))
  with pytest.raises(ConfigError, match="max_len=41 exceeds the 40 positions"):
    SubwordTokenizer.from_folder(folder, 41)
  good = open(config).read()
  with open(config, "w") as f:
    f.write(good[:-1] + ",\n}")
  with pytest.raises(DataError, match=r"config.json: line 2 column 1: not valid JSON"):
    load_encoder(folder)
  d = json.loads(good)
  for key, value, message in [("hidden_size", None, "missing key 'hidden_size'"),
                              ("num_attention_heads", "4", r"num_attention_heads='4', expected"),
                              ("model_type", "gpt2", "model_type='gpt2' is not supported"),
                              ("hidden_act", "mish", "hidden_act='mish'"),
                              ("num_attention_heads", 5, "hidden_size=32 is not a multiple")]:
    write_json(config, {k: v for k, v in dict(d, **{key: value}).items() if v is not None})
    with pytest.raises(DataError, match=f"config.json: {message}"):
      load_encoder(folder)
  write_json(config, d)
  from safetensors.numpy import load_file
  good_weights = load_file(weights)
  for change, message in [
      (lambda w: w.pop("bert.encoder.layer.1.output.dense.bias"),
       "missing weight 'encoder.layer.1.output.dense.bias'"),
      (lambda w: w.update({"bert.encoder.layer.0.output.dense.weight": np.zeros((32, 36), np.float32)}),
       r"weight 'bert.encoder.layer.0.output.dense.weight' has shape \(32, 36\), the config "
       r"\(config.json\) gives \(32, 37\)"),
      (lambda w: w.update({"bert.encoder.layer.2.output.dense.bias": np.zeros(32, np.float32)}),
       "unexpected weight 'bert.encoder.layer.2.output.dense.bias'"),
      (lambda w: w.update({"embeddings.LayerNorm.gamma": np.ones(32, np.float32)}),
       "weights 'bert.embeddings.LayerNorm.weight' and 'embeddings.LayerNorm.gamma' are the same")]:
    w = dict(good_weights)
    change(w)
    save_file(w, weights)
    with pytest.raises(DataError, match="model.safetensors: " + message):
      load_encoder(folder)
  with open(weights, "wb") as f:
    f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
  with pytest.raises(DataError, match="model.safetensors: not a readable safetensors file"):
    load_encoder(folder)
  os.remove(weights)
  with pytest.raises(DataError, match="model.safetensors: no such file"):
    load_encoder(folder)
  numpy_model(str(tmp_path / "r"), "roberta")  # 40 positions from padding_idx + 1 = 2: 38
  with pytest.raises(ConfigError, match="exceeds the 38 positions"):
    SubwordTokenizer.from_folder(str(tmp_path / "r"), 39)
  assert SubwordTokenizer.from_folder(str(tmp_path / "r"), 38).max_len == 38

"""Tiny random Hugging Face-format models the tests write (config.json, model.safetensors,
vocab.txt or a byte-level BPE tokenizer.json): BERT, RoBERTa, DistilBERT, in every
weight-name style. Nothing is downloaded."""

import json
import os

import numpy as np
from safetensors.numpy import save_file

from textclf_jax.models.encoders.hf_load import config_from_dict, expected_weights

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
VOCAB = (SPECIALS + CHARS + ["##" + c for c in CHARS[:26]]
         + "the cat sat on mat hello world un ##believ ##able cafe au lait".split())
TEXTS = ["Hello, world!", "The cat sat on the mat.", "Unbelievable!!! Café au lait",
         "", "x" * 150, " ".join(["the cat"] * 40), "[SEP] inside, and ünknown ✓ 東京"]
DIMS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, layer_norm_eps=1e-12, hidden_act="gelu")


def write_json(path, d):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(d, f)


def bert_vocab(folder):
  with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB) + "\n")


def roberta_tokenizer(folder):
  """A byte-level BPE tokenizer.json trained here (<s>=0, <pad>=1, </s>=2); its size."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(TEXTS * 3, trainers.BpeTrainer(
      vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
  tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
  tok.save(os.path.join(folder, "tokenizer.json"))
  return tok.get_vocab_size()


def numpy_model(folder, model_type="bert", style="hf", seed=0):
  """Writes config.json, model.safetensors and the tokenizer files of a random model;
  returns its weights under BERT's canonical names. style: "hf" (`bert.` prefix,
  LayerNorm.weight/bias), "st" (no prefix, as sentence-transformers), "tf"
  (`bert.` prefix, LayerNorm.gamma/beta), "distilbert" (DistilBERT's names)."""
  os.makedirs(folder, exist_ok=True)
  if model_type == "roberta":
    vocab, types, pad = roberta_tokenizer(folder), 1, 1
  else:
    bert_vocab(folder)
    vocab, types, pad = len(VOCAB), (0 if model_type == "distilbert" else 2), 0
  config = dict(DIMS, model_type=model_type, vocab_size=vocab, type_vocab_size=types,
                pad_token_id=pad)
  if model_type == "distilbert":
    config = dict(model_type="distilbert", vocab_size=vocab, dim=32, n_layers=2, n_heads=4,
                  hidden_dim=37, max_position_embeddings=40, activation="gelu", pad_token_id=0)
  write_json(os.path.join(folder, "config.json"), config)
  cfg = config_from_dict(config)
  rng = np.random.default_rng(seed)
  canon = dict.fromkeys(expected_weights(cfg))
  # Shapes from the architecture: embeddings [n, H], dense weight [out, in], norms [H].
  h, i = cfg.hidden_size, cfg.intermediate_size
  for name in canon:
    if name.endswith("embeddings.weight"):
      n = {"word": vocab, "posi": 40, "toke": types}[name.split(".")[1][:4]]
      shape = (n, h)
    elif "intermediate.dense" in name:
      shape = (i, h) if name.endswith("weight") else (i,)
    elif "output.dense" in name and "attention" not in name:
      shape = (h, i) if name.endswith("weight") else (h,)
    elif "LayerNorm" not in name and name.endswith("weight"):
      shape = (h, h)
    else:
      shape = (h,)
    base = 1.0 if "LayerNorm.weight" in name else 0.0
    canon[name] = (base + 0.3 * rng.standard_normal(shape)).astype(np.float32)
  file = {}
  for name, array in canon.items():
    if style == "distilbert":
      for a, b in [("attention.self.query", "attention.q_lin"),
                   ("attention.self.key", "attention.k_lin"),
                   ("attention.self.value", "attention.v_lin"),
                   ("attention.output.dense", "attention.out_lin"),
                   ("attention.output.LayerNorm", "sa_layer_norm"),
                   ("intermediate.dense", "ffn.lin1"), ("output.dense", "ffn.lin2"),
                   ("output.LayerNorm", "output_layer_norm"), ("encoder.", "transformer.")]:
        name = name.replace(a, b)
      name = "distilbert." + name
    elif style == "tf":
      name = "bert." + name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
          "LayerNorm.bias", "LayerNorm.beta")
    elif style == "hf":
      name = f"{model_type}.{name}"
    file[name] = array
  # ignored: a head on top and the position-id buffer
  file["pooler.dense.weight"] = np.zeros((h, h), np.float32)
  file["embeddings.position_ids"] = np.arange(40, dtype=np.int64)[None]
  save_file(file, os.path.join(folder, "model.safetensors"))
  return cfg, canon

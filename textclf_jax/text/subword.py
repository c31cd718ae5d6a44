"""Subword tokenization for the pretrained encoders (models/encoders): a thin wrapper over
Hugging Face `tokenizers`, independent of JAX.

Reads folder/tokenizer.json, or builds BERT's WordPiece tokenizer (BertNormalizer,
BertPreTokenizer, [CLS] $A [SEP]) from folder/vocab.txt when there is no tokenizer.json
(do_lower_case from tokenizer_config.json, else True, as transformers' BertTokenizer).
Texts become ids [N, T] int32 with the special tokens ([CLS]/[SEP] or <s>/</s>), padded
with the tokenizer's pad id to the longest text (or `pad_to`), truncated at max_len tokens
(special tokens included); max_len may not exceed the positions the model has.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

from textclf_jax.errors import ConfigError, DataError

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_TOKENS = ("[PAD]", "<pad>")


class Encoded(NamedTuple):
  ids: np.ndarray  # [N, T] int32, padded with pad_id
  mask: np.ndarray  # [N, T] int32: 1 on tokens, 0 on padding
  lengths: np.ndarray  # [N] int32: tokens per text, special tokens included


def _read_json(path):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: line {e.lineno} column {e.colno}: not valid JSON ({e.msg})") from None


def positions_in_config(folder: str) -> int:
  """The longest input folder/config.json's model has positions for (RoBERTa numbers
  positions from pad_token_id + 1, so 514 embeddings hold 512 tokens)."""
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file (needed for the model's max_position_embeddings)")
  d = _read_json(path)
  n = d.get("max_position_embeddings") if isinstance(d, dict) else None
  if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
    raise DataError(f"{path}: max_position_embeddings={n!r}, expected a positive integer")
  if d.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
    pad = d.get("pad_token_id", 1)
    n -= (pad if isinstance(pad, int) else 1) + 1
  return n


def wordpiece_from_vocab(path: str, lowercase: bool = True):
  """vocab.txt (one token a line, id = line number) -> BERT's WordPiece tokenizer."""
  from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

  with open(path, encoding="utf-8") as f:
    tokens = [line.rstrip("\n") for line in f]
  vocab = {}
  for i, token in enumerate(tokens):
    vocab.setdefault(token, i)
  for token in ("[UNK]", "[CLS]", "[SEP]"):
    if token not in vocab:
      raise DataError(f"{path}: no {token} token in the vocabulary")
  tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
  tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                              strip_accents=None, lowercase=lowercase)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  cls, sep = vocab["[CLS]"], vocab["[SEP]"]
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
  tok.add_special_tokens([t for t in BERT_SPECIALS if t in vocab])  # never split
  return tok


class SubwordTokenizer:
  """texts -> Encoded(ids, mask, lengths); `max_len` tokens at most per text."""

  def __init__(self, tokenizer, max_len: int, max_positions: int, source: str = "tokenizer"):
    if not isinstance(max_len, int) or max_len < 2:
      raise ConfigError(f"max_len={max_len!r}: expected an integer >= 2 (room for the "
                        "special tokens)")
    if max_len > max_positions:
      raise ConfigError(f"max_len={max_len} exceeds the {max_positions} positions the model "
                        f"has ({source}); set max_len <= {max_positions}")
    self.tokenizer, self.max_len, self.source = tokenizer, max_len, source
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)
    padding = tokenizer.padding
    pad_id = padding["pad_id"] if padding else None
    for token in PAD_TOKENS:
      if pad_id is None and tokenizer.token_to_id(token) is not None:
        pad_id = tokenizer.token_to_id(token)
    if pad_id is None:
      raise DataError(f"{source}: no padding token ({' or '.join(PAD_TOKENS)})")
    self.pad_id = int(pad_id)

  @classmethod
  def from_folder(cls, folder: str, max_len: int, max_positions: int | None = None):
    """folder/tokenizer.json, else folder/vocab.txt; max_positions from folder/config.json
    when not given."""
    from tokenizers import Tokenizer

    if not os.path.isdir(folder):
      raise DataError(f"{folder}: not a model folder (expected tokenizer.json or vocab.txt)")
    limit = positions_in_config(folder) if max_positions is None else max_positions
    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
      try:
        return cls(Tokenizer.from_file(path), max_len, limit, path)
      except Exception as e:  # tokenizers raises plain Exception on a malformed file
        if isinstance(e, (ConfigError, DataError)):
          raise
        raise DataError(f"{path}: not a readable tokenizer.json ({e})") from None
    path = os.path.join(folder, "vocab.txt")
    if not os.path.isfile(path):
      raise DataError(f"{folder}: neither tokenizer.json nor vocab.txt")
    config = os.path.join(folder, "tokenizer_config.json")
    lower = _read_json(config).get("do_lower_case", True) if os.path.isfile(config) else True
    return cls(wordpiece_from_vocab(path, bool(lower)), max_len, limit, path)

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def encode(self, texts, pad_to: int | None = None) -> Encoded:
    """texts (strings) -> ids [N, T] int32, T = the longest text's tokens or `pad_to`."""
    texts = list(texts)
    for i, t in enumerate(texts):
      if not isinstance(t, str):
        raise DataError(f"text {i}: expected a string, got {type(t).__name__}")
    rows = [e.ids for e in self.tokenizer.encode_batch(texts)] if texts else []
    lengths = np.array([len(r) for r in rows], np.int32)
    width = int(lengths.max(initial=0)) if pad_to is None else pad_to
    if width < int(lengths.max(initial=0)):
      raise ValueError(f"pad_to={pad_to} is shorter than the longest text "
                       f"({int(lengths.max())} tokens)")
    ids = np.full((len(rows), width), self.pad_id, np.int32)
    for i, r in enumerate(rows):
      ids[i, :len(r)] = r
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int32)
    return Encoded(ids, mask, lengths)

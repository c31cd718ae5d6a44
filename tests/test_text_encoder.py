"""text/encoder.py: the word encoder gives exactly the ids the tokenizer + vocabulary path
gave, saves as the vocab.json runs have always had, and loads old run directories."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_config, write_jsonl
from textclf_jax.data.batching import encode_texts, encode_tokens
from textclf_jax.data.pipeline import prepare
from textclf_jax.errors import DataError
from textclf_jax.run import layout as rundir
from textclf_jax.text import encoder as encoder_lib
from textclf_jax.text.encoder import (PAD_ID, TextEncoder, WordEncoder, encoder_for,
                                      load_encoder)
from textclf_jax.text.tokenize import Tokenizer
from textclf_jax.text.vocab import UNK_ID, Vocab

TRAIN = ["The film was great, really great!", "I didn't like the plot at all.",
         "Great acting; the plot was thin.", "An awful film. Awful!", "It's not bad at all"]
NEW = ["", "the FILM was GREAT", "zebras and quokkas", "<br /> Don't watch it, it's awful",
       "great " * 40, "not the plot", "   "]


def _config(**overrides):
  return tiny_config(**overrides)


def _old_ids(config, train, texts, max_len):
  """What the code before encoders did: Vocab.build on the training tokens, then
  encode_texts with the config's tokenizer (serve/runs.py's predict path)."""
  tokenizer = Tokenizer.from_config(config)
  untruncated = Tokenizer(config.lowercase, config.remove_stopwords, config.keep_negations,
                          0, bool(config.get("stem", False)))
  vocab = Vocab.build([untruncated(t) for t in train], config.min_count, config.max_vocab)
  return vocab, encode_texts(texts, tokenizer, vocab, max_len)


@pytest.mark.parametrize("overrides", [
    dict(), dict(lowercase=False), dict(remove_stopwords=True),
    dict(remove_stopwords=True, keep_negations=False), dict(min_count=2),
    dict(max_vocab=6), dict(stem=True, max_len=5)])
def test_word_encoder_gives_the_old_ids(overrides):
  config = _config(**overrides)
  encoder = encoder_for(config).fit(TRAIN)
  assert isinstance(encoder, TextEncoder) and encoder.name == "words"
  for max_len in (config.max_len, 3, 1):
    vocab, (old_ids, old_lengths) = _old_ids(config, TRAIN, NEW, max_len)
    assert encoder.vocab.words == vocab.words and encoder.vocab_size == len(vocab)
    ids, lengths = encoder.encode(NEW, max_len)
    assert ids.dtype == old_ids.dtype == np.int32 and lengths.dtype == np.int32
    np.testing.assert_array_equal(ids, old_ids)
    np.testing.assert_array_equal(lengths, old_lengths)


def test_word_encoder_cases():
  config = _config(remove_stopwords=True, max_len=4)
  encoder = encoder_for(config).fit(TRAIN)
  ids, lengths = encoder.encode(["", "Zebras GREAT film", "the a an of", "great " * 9],
                                config.max_len)
  assert encoder.pad_id == PAD_ID == 0 and encoder.unk_id == UNK_ID
  np.testing.assert_array_equal(ids[0], [PAD_ID] * 4)  # empty: one padding token
  assert lengths.tolist() == [1, 3, 1, 4]  # stop words only: empty too; cut at max_len
  great, film = encoder.vocab.index["great"], encoder.vocab.index["film"]
  assert ids[1].tolist() == [UNK_ID, great, film, PAD_ID]  # lowercased; unknown -> UNK
  assert ids[3].tolist() == [great] * 4
  assert encoder.decode(ids[1]) == ["<unk>", "great", "film", "<pad>"]
  assert encoder.pieces("Zebras didn't eat it, ever!") == [  # stop words out, untruncated
      "zebras", "n't", "eat", ",", "ever", "!"]
  flat, counts = encoder.encode_flat(["great film", "", "film"])
  assert flat.tolist() == [great, film, film] and counts.tolist() == [2, 0, 1]


def test_the_encoder_ignores_the_configs_max_len_until_encode():
  encoder = encoder_for(_config(max_len=2)).fit(TRAIN)
  assert encoder.encode(["great great great"], 3)[1].tolist() == [3]
  assert len(encoder.pieces("a b c d")) == 4


@pytest.mark.parametrize("max_len", [0, 1, 3, 50])
def test_pieces_are_the_tokens_the_configs_tokenizer_gives(max_len):
  """pieces(text, max_len): the TF-IDF family's tokens (Tokenizer.from_config), unfitted."""
  config = _config(max_len=max_len, remove_stopwords=True, stem=True)
  encoder = encoder_for(config)
  for text in NEW + TRAIN:
    assert encoder.pieces(text, config.max_len) == Tokenizer.from_config(config)(text)


def test_prepare_carries_the_fitted_encoder(tmp_path):
  rows = [{"text": t, "label": str(i % 2)} for i, t in enumerate(TRAIN * 4)]
  data = tmp_path / "d"
  data.mkdir()
  for split in ("train", "dev", "test"):
    write_jsonl(data / f"{split}.jsonl", rows)
  config = _config(dataset=str(data), max_len=6)
  prepared = prepare(config)
  assert isinstance(prepared.encoder, WordEncoder)
  assert prepared.vocab is prepared.encoder.vocab
  assert prepared.stats["vocab_size"] == prepared.encoder.vocab_size
  ids, lengths = prepared.encoder.encode([r["text"] for r in rows], 6)
  np.testing.assert_array_equal(prepared.splits["test"].ids, ids)
  np.testing.assert_array_equal(prepared.splits["test"].lengths, lengths)
  again = prepare(config, encoder=prepared.encoder)  # eval: the run's encoder, not refitted
  np.testing.assert_array_equal(again.splits["dev"].ids, prepared.splits["dev"].ids)
  assert again.encoder is prepared.encoder
  by_vocab = prepare(config, vocab=prepared.vocab)  # callers from before encoders
  np.testing.assert_array_equal(by_vocab.splits["dev"].ids, prepared.splits["dev"].ids)


def test_save_and_load_round_trip_through_a_run_directory(tmp_path):
  config = _config(lowercase=False, remove_stopwords=True)
  encoder = encoder_for(config).fit(TRAIN)
  encoder.save(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == [rundir.VOCAB] == ["vocab.json"]
  with open(tmp_path / "vocab.json", encoding="utf-8") as f:
    assert json.load(f) == {"words": encoder.vocab.words}
  loaded = load_encoder(str(tmp_path), config)
  assert loaded.vocab.words == encoder.vocab.words
  assert loaded.tokenizer == encoder.tokenizer == Tokenizer(False, True, True, 0, False)
  for a, b in zip(loaded.encode(NEW, 7), encoder.encode(NEW, 7)):
    np.testing.assert_array_equal(a, b)


def test_loads_a_vocab_json_written_by_the_old_code(tmp_path):
  """vocab.json as Vocab.to_json wrote it before encoders; the tokenizer settings come
  from the run's config, as they always did (a config from before `stem` existed too)."""
  config = _config()
  old = Vocab.build([Tokenizer()(t) for t in TRAIN])
  old.to_json(str(tmp_path / "vocab.json"))
  with config.unlocked():
    del config["stem"]
  encoder = load_encoder(str(tmp_path), config)
  assert encoder.vocab.words == old.words and not encoder.tokenizer.stem
  texts = ["Great film!", "unknown words here", ""]
  ids, lengths = encoder.encode(texts, 5)
  old_ids, old_lengths = encode_tokens([Tokenizer()(t) for t in texts], old, 5)
  np.testing.assert_array_equal(ids, old_ids)
  np.testing.assert_array_equal(lengths, old_lengths)


def test_loads_with_an_export_manifests_tokenizer_settings(tmp_path):
  """An export keeps the settings as the manifest's "tokenizer" dict (no config)."""
  config = _config(remove_stopwords=True)
  encoder = encoder_for(config).fit(TRAIN)
  encoder.save(str(tmp_path))
  settings = dict(encoder.settings(), max_len=24)
  assert settings == dict(lowercase=True, remove_stopwords=True, keep_negations=True,
                          max_len=24, stem=False)
  loaded = load_encoder(str(tmp_path), settings, "words")
  assert loaded.tokenizer == encoder.tokenizer


@pytest.mark.parametrize("content, message", [
    (None, "vocab.json: missing"),
    ("{not json", "vocab.json: not a vocabulary file"),
    ('{"vocabulary": []}', "vocab.json: not a vocabulary file"),
    ('["<pad>", "<unk>"]', "vocab.json: not a vocabulary file"),
    ('{"words": 5}', 'vocab.json: key "words": expected a list of strings'),
    ('{"words": ["<pad>", "<unk>", 3]}', 'vocab.json: key "words": expected a list of strings'),
    ('{"words": ["a", "b"]}', "vocab.json: expected the first two words to be <pad>, <unk>"),
    ('{"words": ["<pad>", "<unk>", "a", "a"]}', "a word is listed twice"),
])
def test_a_missing_or_malformed_vocab_json_is_named(tmp_path, content, message):
  if content is not None:
    (tmp_path / "vocab.json").write_text(content, encoding="utf-8")
  with pytest.raises(DataError, match=message) as e:
    load_encoder(str(tmp_path), _config())
  assert str(tmp_path / "vocab.json") in str(e.value)


def test_the_registry_picks_by_name_and_rejects_unknown_ones(tmp_path):
  config = _config()
  assert encoder_lib.encoder_name(config) == "words"  # a config without `encoder`
  with config.unlocked():
    config.encoder = "wordpiece"
  with pytest.raises(DataError, match="\"encoder\": expected one of words, found 'wordpiece'"):
    encoder_for(config)
  with pytest.raises(DataError, match="encoder 'bpe' is not one of words"):
    load_encoder(str(tmp_path), _config(), "bpe")


def test_a_registered_encoder_is_used_by_prepare_with_no_other_edit(tmp_path, monkeypatch):
  """A toy character encoder, registered by name, fits and encodes through prepare."""

  class Chars:
    name, pad_id, unk_id = "chars", 0, 1

    def __init__(self, chars=None):
      self.chars = chars

    @classmethod
    def from_config(cls, config):
      return cls()

    @property
    def vocab_size(self):
      return len(self.chars) + 2

    def fit(self, texts):
      return Chars(sorted(set("".join(texts))))

    def encode_flat(self, texts):
      index = {c: i + 2 for i, c in enumerate(self.chars)}
      flat = np.asarray([index.get(c, 1) for t in texts for c in t], np.int32)
      return flat, np.asarray([len(t) for t in texts], np.int64)

    def encode(self, texts, max_len):
      return encoder_lib.pad_flat(*self.encode_flat(texts), max_len)

  monkeypatch.setattr(encoder_lib, "ENCODERS", dict(encoder_lib.ENCODERS))
  encoder_lib.register(Chars)
  rows = [{"text": t, "label": str(i % 2)} for i, t in enumerate(["ab", "ba", "abc", "cab"])]
  data = tmp_path / "d"
  data.mkdir()
  for split in ("train", "dev", "test"):
    write_jsonl(data / f"{split}.jsonl", rows)
  config = _config(dataset=str(data), max_len=3)
  with config.unlocked():
    config.encoder = "chars"
  prepared = prepare(config)
  assert prepared.encoder.chars == ["a", "b", "c"]
  assert prepared.splits["train"].ids.tolist() == [[2, 3, 0], [3, 2, 0], [2, 3, 4], [4, 2, 3]]

  class BadPad(Chars):
    name, pad_id = "badpad", 5
  with pytest.raises(ValueError, match="pad_id must be 0"):
    encoder_lib.register(BadPad)

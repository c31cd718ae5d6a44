"""Readers, sources, splits, tokeniser, vocabulary and batching on files the tests write."""

import gzip
import json
import struct

import numpy as np
import pytest

from conftest import make_rows, tiny_config, write_jsonl
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import Batcher, Encoded, padded_lengths
from textclf_jax.errors import DataError
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.readers import read_file
from textclf_jax.data.sources import load_bbc_news, load_source
from textclf_jax.text.tokenize import Tokenizer
from textclf_jax.data.vectors import load_vectors
from textclf_jax.text.vocab import Vocab

# --- readers -------------------------------------------------------------------


def test_jsonl_gz_csv_tsv_agree(tmp_path):
  rows = make_rows(12, 0)
  write_jsonl(tmp_path / "a.jsonl", rows)
  with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  for name, sep in (("a.csv", ","), ("a.tsv", "\t")):
    with open(tmp_path / name, "w", encoding="utf-8") as f:
      f.write(f"label{sep}text\n")
      for r in rows:
        text = f'"{r["text"]}"' if sep == "," else r["text"]
        f.write(f"{r['label']}{sep}{text}\n")
  splits = [read_file(str(tmp_path / n)) for n in ("a.jsonl", "a.jsonl.gz", "a.csv", "a.tsv")]
  for split in splits:
    assert split.texts == [r["text"] for r in rows]
    assert split.labels == [r["label"] for r in rows]


def test_custom_keys_and_multi_label(tmp_path):
  path = write_jsonl(tmp_path / "m.jsonl", [{"body": "x y", "tags": ["a", "b"]},
                                            {"body": "z", "tags": []}])
  split = read_file(path, text_key="body", labels_key="tags")
  assert split.texts == ["x y", "z"] and split.labels == [["a", "b"], []]
  csv_path = tmp_path / "m.csv"
  csv_path.write_text("text,labels\nhello,a|b\nbye,c\n")
  assert read_file(str(csv_path)).labels == [["a", "b"], ["c"]]


@pytest.mark.parametrize("content, message", [
    ('{"text": "a", "label": "x"}\n{"text": "b" "label": "y"}\n', r"bad\.jsonl:2: invalid JSON"),
    ('{"text": "a", "label": "x"}\n{"label": "y"}\n', r"bad\.jsonl:2: missing key 'text'"),
    ('{"text": "a", "label": "x"}\n{"text": "b"}\n', r"bad\.jsonl:2: missing key 'label'"),
    ('{"text": "a", "label": "x"}\n[1, 2]\n', r"bad\.jsonl:2: expected a JSON object"),
    ('{"text": 5, "label": "x"}\n', r"bad\.jsonl:1: 'text' must be a string"),
    ("\n\n", r"bad\.jsonl: file is empty"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, content, message):
  path = tmp_path / "bad.jsonl"
  path.write_text(content)
  with pytest.raises(DataError, match=message):
    read_file(str(path))


def test_invalid_utf8_names_line(tmp_path):
  path = tmp_path / "latin.jsonl"
  path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
  with pytest.raises(DataError, match=r"latin\.jsonl:2: text is not valid UTF-8"):
    read_file(str(path))


def test_csv_errors(tmp_path):
  path = tmp_path / "bad.csv"
  path.write_text("text,label\nfine,a\ntoo,many,columns\n")
  with pytest.raises(DataError, match=r"bad\.csv:3: expected 2 columns"):
    read_file(str(path))
  path.write_text('text,label\n"unclosed,a\n')
  with pytest.raises(DataError, match=r"bad\.csv"):
    read_file(str(path))


def test_csv_unclosed_quote_is_reported_at_its_own_line(tmp_path):
  """An unclosed quote on line 51 swallows the lines after it; the csv module
  only fails where the swallowed text stops parsing (here line 82), but the
  error must name the line of the bad row, 51."""
  lines = ["text,label"] + [f"row {n},a" for n in range(2, 51)] + ['"bad row 51,a']
  lines += [f"row {n},a" for n in range(52, 82)] + ['then a "quote" on 82,a']
  lines += [f"row {n},a" for n in range(83, 90)]
  path = tmp_path / "quote.csv"
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"quote\.csv:51: invalid CSV .*runs on to line 82.*"
                                       r"quote .* on line 51 unclosed"):
    read_file(str(path))
  # A quoted field that legitimately spans lines: later rows keep their own lines.
  path.write_text('text,label\n"two\nlines",a\nfine,b\nbad,"x"y\n')
  with pytest.raises(DataError, match=r"quote\.csv:5: invalid CSV"):
    read_file(str(path))
  # An unclosed quote whose swallowed lines still parse: the column count error
  # names the row's first line.
  path.write_text('text,label\nfine,a\n"open,b\nx,y"\n')
  with pytest.raises(DataError, match=r"quote\.csv:3: expected 2 columns.*line 4"):
    read_file(str(path))
  tsv = tmp_path / "quote.tsv"
  tsv.write_text('text\tlabel\nfine\ta\n"open\tb\nx\ty\n')
  with pytest.raises(DataError, match=r"quote\.tsv:3: invalid CSV \(unexpected end of data\)"
                                       r".*line 4"):
    read_file(str(tsv))


def test_row_errors_after_a_multiline_field_name_the_rows_first_line(tmp_path):
  path = tmp_path / "multi.csv"
  path.write_text('text,label,fold\n"one\ntwo\nthree",a,0\nfour,b,x\n')
  with pytest.raises(DataError, match=r"multi\.csv:5: 'fold' must be an integer"):
    read_file(str(path))
  path.write_text('text,label,fold\n"one\ntwo",a,0\n"three",,1\n')
  with pytest.raises(DataError, match=r"multi\.csv:4: empty value for 'label'"):
    read_file(str(path))


def test_fold_values_and_byte_order_mark(tmp_path):
  path = tmp_path / "f.jsonl"
  path.write_text('{"text": "a", "label": "x", "fold": 1}\n'
                  '{"text": "b", "label": "y", "fold": 2.0}\n{"text": "c", "label": "y", "fold": " 3"}\n')
  assert read_file(str(path)).folds.tolist() == [1, 2, 3]
  for bad in ("Infinity", "1.5", "true", '"x"', "[1]", "1" * 30):
    path.write_text('{"text": "a", "label": "x", "fold": 0}\n'
                    f'{{"text": "b", "label": "y", "fold": {bad}}}\n')
    with pytest.raises(DataError, match=r"f\.jsonl:2: 'fold' must be an integer"):
      read_file(str(path))
  path = tmp_path / "bom.csv"  # Excel's "CSV UTF-8" starts with a byte order mark
  path.write_bytes(b"\xef\xbb\xbftext,label\nhello,a\n")
  assert read_file(str(path)).texts == ["hello"]
  path.write_bytes(b"\n\ntext,label\nhello,a\n")
  with pytest.raises(DataError, match=r"bom\.csv:1: expected a header row"):
    read_file(str(path))


def test_missing_file_and_unknown_suffix(tmp_path):
  with pytest.raises(DataError, match="file not found"):
    read_file(str(tmp_path / "nope.jsonl"))
  (tmp_path / "x.parquet").write_text("data")
  with pytest.raises(DataError, match="unknown file type"):
    read_file(str(tmp_path / "x.parquet"))


# --- sources and splits --------------------------------------------------------


def test_bbc_news_builtin_reads_package_files():
  raw = load_bbc_news()
  assert len(raw.splits["all"]) == 2225
  assert sorted(set(raw.splits["all"].labels)) == [
      "business", "entertainment", "politics", "sports", "tech"]


def test_bbc_news_split_is_seeded_stratified():
  config = tiny_config(dataset="bbc_news")
  splits = splits_lib.make_splits(load_bbc_news(), config)
  sizes = {k: len(v) for k, v in splits.items()}
  assert sum(sizes.values()) == 2225 and sizes["test"] == 444 and sizes["dev"] == 178
  again = splits_lib.make_splits(load_bbc_news(), config)
  assert again["test"].texts == splits["test"].texts
  counts = {l: splits["test"].labels.count(l) for l in set(splits["test"].labels)}
  assert min(counts.values()) >= 70  # every topic represented in proportion


def test_directory_with_given_splits_and_derived_dev(tmp_path):
  d = tmp_path / "ds"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(100, 1))
  write_jsonl(d / "test.jsonl", make_rows(30, 2))
  config = tiny_config(dataset=str(d))
  splits = splits_lib.make_splits(load_source(config), config)
  assert len(splits["test"]) == 30
  assert len(splits["dev"]) + len(splits["train"]) == 100
  assert 9 <= len(splits["dev"]) <= 11


def test_cross_validation_uses_fold_key(tmp_path):
  d = tmp_path / "cv"
  d.mkdir()
  write_jsonl(d / "all.jsonl", make_rows(50, 1, with_fold=True))
  config = tiny_config(dataset=str(d))
  raw = load_source(config)
  assert splits_lib.uses_cross_validation(raw)
  assert splits_lib.num_folds_of(raw, 10) == 5
  splits = splits_lib.make_splits(raw, config, fold=2)
  assert len(splits["test"]) == 10
  with pytest.raises(DataError, match="fold 7 out of range"):
    splits_lib.make_splits(raw, config, fold=7)


def test_seeded_fold_assignment_without_fold_key():
  labels = ["a"] * 30 + ["b"] * 20
  folds = splits_lib.stratified_folds(labels, 10, seed=0)
  assert np.array_equal(folds, splits_lib.stratified_folds(labels, 10, seed=0))
  assert np.bincount(folds).tolist() == [5] * 10


def test_unseen_label_in_test_is_an_error(tmp_path):
  d = tmp_path / "ds"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(30, 1))
  write_jsonl(d / "test.jsonl", make_rows(3, 2) + [{"text": "odd", "label": "weather"}])
  config = tiny_config(dataset=str(d))
  with pytest.raises(DataError, match="test.jsonl:4: test label 'weather'"):
    prepare(config)


def test_empty_after_filtering_is_an_error(tmp_path):
  d = tmp_path / "ds"
  d.mkdir()
  write_jsonl(d / "train.jsonl", [{"text": "the a of", "label": "x"},
                                  {"text": "and to", "label": "y"}] * 10)
  write_jsonl(d / "test.jsonl", [{"text": "the", "label": "x"}])
  config = tiny_config(dataset=str(d), remove_stopwords=True)
  with pytest.raises(DataError, match="empty after tokenisation"):
    prepare(config)


def test_benchmark_name_needs_data_dir(monkeypatch):
  monkeypatch.delenv("TEXTCLF_DATA_DIR", raising=False)
  with pytest.raises(DataError, match="TEXTCLF_DATA_DIR"):
    load_source(tiny_config(dataset="sst2"))


def test_unknown_dataset_name():
  with pytest.raises(DataError, match="not a built-in"):
    load_source(tiny_config(dataset="no_such_dataset"))


# --- tokeniser and vocabulary --------------------------------------------------


def test_tokenizer_keeps_contractions_and_negations():
  tok = Tokenizer()
  assert tok("Don't stop, it's GREAT!") == ["do", "n't", "stop", ",", "it", "'s", "great", "!"]
  assert tok("it does n't work<br />well") == ["it", "does", "n't", "work", "well"]
  no_stop = Tokenizer(remove_stopwords=True, keep_negations=True)
  assert no_stop("this is not a good movie") == ["not", "good", "movie"]
  plain = Tokenizer(remove_stopwords=True, keep_negations=False)
  assert plain("this is not a good movie") == ["good", "movie"]
  assert Tokenizer(lowercase=False, max_len=2)("Hello World again") == ["Hello", "World"]


def test_vocab_from_train_only_with_limits(tmp_path):
  vocab = Vocab.build([["b", "a", "b"], ["c", "b", "a"]], min_count=2)
  assert vocab.words == ["<pad>", "<unk>", "b", "a"]
  assert vocab.encode(["a", "zzz"]).tolist() == [3, 1]
  assert len(Vocab.build([["a", "b", "c"]], max_size=3)) == 3
  vocab.to_json(str(tmp_path / "v.json"))
  assert Vocab.from_json(str(tmp_path / "v.json")).words == vocab.words


def _texts_with_rare_and_unseen_words(tmp_path):
  """train/dev/test where words occur once, only in dev/test, or in empty texts."""
  d = tmp_path / "rare"
  d.mkdir()
  rows = make_rows(80, 1)
  rows[3]["text"] += " once only, twice twice! Don't"
  rows[5]["text"] = "<br />"  # empty after tokenising
  write_jsonl(d / "train.jsonl", rows)
  dev = make_rows(20, 2)
  dev[0]["text"] += " devword once"
  write_jsonl(d / "dev.jsonl", dev)
  test = make_rows(30, 3)
  test[1]["text"] = "testword TWICE unseen-words " * 9
  write_jsonl(d / "test.jsonl", test)
  return str(d)


@pytest.mark.parametrize("overrides", [
    dict(min_count=1, max_len=24), dict(min_count=2, max_len=5), dict(max_vocab=12, max_len=0),
    dict(max_len=0, max_len_percentile=50.0, lowercase=False)])
def test_prepare_encodes_as_vocab_build_and_encode_tokens(tmp_path, overrides):
  """prepare numbers tokens as first seen and maps them to the vocabulary at the end:
  the same vocabulary, ids, lengths and statistics as Vocab.build on the training
  tokens followed by encode_tokens of every split."""
  from textclf_jax.data.batching import encode_flat, encode_tokens
  from textclf_jax.data.pipeline import length_at_percentile
  config = tiny_config(dataset=_texts_with_rare_and_unseen_words(tmp_path), **overrides)
  prepared = prepare(config)
  raw = load_source(config)
  split_data = splits_lib.make_splits(raw, config, -1, {})
  tokenizer = Tokenizer(config.lowercase, config.remove_stopwords, config.keep_negations)
  tokens = {n: [tokenizer(t) for t in s.texts] for n, s in split_data.items()}
  vocab = Vocab.build(tokens["train"], config.min_count, config.max_vocab)
  assert prepared.vocab.words == vocab.words
  max_len = config.max_len or length_at_percentile(tokens["train"], config.max_len_percentile)
  assert prepared.max_len == max_len
  for name, token_lists in tokens.items():
    ids, lengths = encode_tokens(token_lists, vocab, max_len)
    np.testing.assert_array_equal(prepared.splits[name].ids, ids)
    np.testing.assert_array_equal(prepared.splits[name].lengths, lengths)
    assert prepared.splits[name].ids.dtype == ids.dtype == np.int32
    flat = np.concatenate([vocab.encode(t) for t in token_lists])
    flat_ids, flat_lengths = encode_flat(flat, [len(t) for t in token_lists], max_len)
    np.testing.assert_array_equal(flat_ids, ids)
    np.testing.assert_array_equal(flat_lengths, lengths)
  assert prepared.stats["truncated_train_fraction"] == float(
      np.mean([len(t) > max_len for t in tokens["train"]]))


def test_prepare_extends_the_vocabulary_with_dev_and_test_words_that_have_vectors(tmp_path):
  data = _texts_with_rare_and_unseen_words(tmp_path)
  path = tmp_path / "v.txt"
  path.write_text("devword 1 0\ntestword 0 1\nonce 1 1\ngoal 0 0\nnowhere 2 2\n")
  config = tiny_config(dataset=data, embed_dim=2, vectors=str(path), embedding="static",
                       min_count=2)
  prepared = prepare(config)
  tokenizer = Tokenizer()
  split_data = splits_lib.make_splits(load_source(config), config, -1, {})
  train = Vocab.build([tokenizer(t) for t in split_data["train"].texts], 2)
  elsewhere = {t for n in ("dev", "test") for text in split_data[n].texts for t in tokenizer(text)}
  # "once" is in train once (under min_count) and in dev: it joins, as a dev word
  assert prepared.vocab.words == train.words + sorted(
      w for w in elsewhere - set(train.words) if w in ("devword", "testword", "once"))
  assert "once" in prepared.vocab.index and "nowhere" not in prepared.vocab.index


def test_vocab_from_counts_leaves_out_words_counted_zero():
  counts = {"b": 2, "a": 2, "c": 1, "unseen": 0}
  assert Vocab.from_counts(counts).words == ["<pad>", "<unk>", "a", "b", "c"]
  assert Vocab.from_counts(counts, min_count=0).words == ["<pad>", "<unk>", "a", "b", "c"]
  assert Vocab.from_counts(counts, max_size=3).words == ["<pad>", "<unk>", "a"]


# --- batching ------------------------------------------------------------------


def _encoded(n=37, max_len=30, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, max_len + 1, n).astype(np.int32)
  ids = np.zeros((n, max_len), np.int32)
  for i, l in enumerate(lengths):
    ids[i, :l] = rng.integers(2, 50, l)
  return Encoded(ids, lengths, rng.integers(0, 3, n).astype(np.int32))


def test_eval_batches_cover_every_example_once_with_padding_masked():
  data = _encoded()
  batcher = Batcher(8, padded_lengths((8, 16), 30), pad_to_multiple=4)
  plan = batcher.eval_plan(data)
  assert sorted(np.concatenate(plan).tolist()) == list(range(37))
  batches = [batcher.make_batch(data, index) for index in plan]
  assert sum(b["weights"].sum() for b in batches) == 37
  assert all(b["tokens"].shape[0] == 8 for b in batches)
  assert {b["tokens"].shape[1] for b in batches} <= {8, 16, 30}
  last = batches[-1]
  assert last["weights"].tolist() == [1.0] * 5 + [0.0] * 3
  for b in batches:  # every real token kept, nothing beyond each length
    for row in range(int(b["weights"].sum())):
      assert (b["tokens"][row, b["lengths"][row]:] == 0).all()


def test_batch_rows_round_up_to_device_multiple():
  data = _encoded(10)
  batch = Batcher(5, padded_lengths((8,), 30), pad_to_multiple=8).make_batch(data, np.arange(5))
  assert batch["tokens"].shape[0] == 8 and batch["weights"].sum() == 5


def test_train_plan_depends_on_seed_and_epoch_only():
  data = _encoded(200)
  batcher = Batcher(10, padded_lengths((8, 16), 30))
  plan = batcher.train_plan(data, seed=3, epoch=1)
  assert all(np.array_equal(a, b) for a, b in zip(plan, batcher.train_plan(data, 3, 1)))
  assert not all(np.array_equal(a, b) for a, b in zip(plan, batcher.train_plan(data, 3, 2)))
  assert sorted(np.concatenate(plan).tolist()) == list(range(200))
  # Bucketing: padding is a small fraction compared with padding to max_len.
  assert batcher.padding_fraction(data, plan) < 1 - data.lengths.mean() / 30


# --- pretrained vectors ---------------------------------------------------------


def _vocab():
  return Vocab(["<pad>", "<unk>", "good", "bad", "meh"])


def test_vectors_glove_word2vec_fasttext_and_binary(tmp_path):
  good, bad = [0.1, 0.2, 0.3], [-1.0, 0.5, 2.0]
  glove = "good 0.1 0.2 0.3\nbad -1 0.5 2\nother 1 1 1\n"
  (tmp_path / "g.txt").write_text(glove)
  with gzip.open(tmp_path / "g.txt.gz", "wt") as f:
    f.write(glove)
  (tmp_path / "w.txt").write_text("3 3\n" + glove)
  (tmp_path / "f.vec").write_text("3 3\n" + glove)
  with open(tmp_path / "w.bin", "wb") as f:
    f.write(b"2 3\n")
    for word, vec in (("good", good), ("bad", bad)):
      f.write(word.encode() + b" " + struct.pack("<3f", *vec) + b"\n")
  for name, fmt in (("g.txt", "auto"), ("g.txt.gz", "glove"), ("w.txt", "word2vec"),
                    ("f.vec", "fasttext"), ("w.bin", "auto")):
    matrix, found = load_vectors(str(tmp_path / name), _vocab(), 3, fmt, scale=0.25, seed=0)
    assert found.tolist() == [False, False, True, True, False], name
    np.testing.assert_allclose(matrix[2], good, rtol=1e-6)
    np.testing.assert_allclose(matrix[3], bad, rtol=1e-6)
    assert (matrix[0] == 0).all() and (np.abs(matrix[4]) <= 0.25).all()
  again, _ = load_vectors(str(tmp_path / "g.txt"), _vocab(), 3, seed=0)
  np.testing.assert_array_equal(again, load_vectors(str(tmp_path / "g.txt"), _vocab(), 3,
                                                    seed=0)[0])


def test_vectors_errors(tmp_path):
  (tmp_path / "g.txt").write_text("good 0.1 0.2 0.3\nbad 1 2\n")
  with pytest.raises(DataError, match=r"g\.txt:2: 2 values, expected 3"):
    load_vectors(str(tmp_path / "g.txt"), _vocab(), 3)
  (tmp_path / "d.txt").write_text("good 0.1 0.2 0.3\n")
  with pytest.raises(DataError, match="dimension 3.*embed_dim=5"):
    load_vectors(str(tmp_path / "d.txt"), _vocab(), 5)
  (tmp_path / "n.txt").write_text("good 0.1 x 0.3\n")
  with pytest.raises(DataError, match=r"n\.txt:1: values of"):
    load_vectors(str(tmp_path / "n.txt"), _vocab(), 3)
  with pytest.raises(DataError, match="not found"):
    load_vectors(str(tmp_path / "missing.txt"), _vocab(), 3)
  (tmp_path / "e.txt").write_text("")
  with pytest.raises(DataError, match="empty"):
    load_vectors(str(tmp_path / "e.txt"), _vocab(), 3)


def test_prepare_reports_vectors_found(topic_dir, tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("goal 1 0 0 0\nchip 0 1 0 0\nbank 0 0 1 0\nzebra 1 1 1 1\n")
  config = tiny_config(dataset=topic_dir, embed_dim=4, vectors=str(path), embedding="static")
  prepared = prepare(config)
  assert prepared.stats["vectors_found"] == 3
  row = prepared.vocab.index["chip"]
  np.testing.assert_array_equal(prepared.vectors[row], [0, 1, 0, 0])


def test_max_train_examples_is_a_stratified_sample(tmp_path):
  d = tmp_path / "sorted"
  d.mkdir()
  rows = sorted(make_rows(200, 1), key=lambda r: r["label"])  # sorted by label, like MR
  write_jsonl(d / "train.jsonl", rows)
  write_jsonl(d / "test.jsonl", make_rows(30, 2))
  config = tiny_config(dataset=str(d), max_train_examples=60)
  train = splits_lib.make_splits(load_source(config), config)["train"]
  assert 55 <= len(train) <= 65 and len(set(train.labels)) == 3

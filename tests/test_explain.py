"""textclf explain: integrated-gradient completeness, planted words found, CNN winning
n-grams against a hand computation, and the command's output."""

import functools
import io
import json
import random

import numpy as np
import pytest
from flax import nnx

from conftest import run_textclf, tiny_config, write_jsonl
from textclf_jax.serve.explain.integrated import Attributor, completeness, path_points
from textclf_jax.serve.explain.ngrams import FilterWinners
from textclf_jax.models import CNNLSTM, Embeddings, FrozenEmbedding, KimCNN, LSTMClassifier

VOCAB, DIM, CLASSES = 30, 6, 3


def _split(model):
  return nnx.split(model, nnx.Param, FrozenEmbedding)


def _model(cls, kind="rand", **kw):
  vectors = np.random.default_rng(0).normal(size=(VOCAB, DIM)).astype(np.float32)
  emb = Embeddings(VOCAB, DIM, kind, None if kind == "rand" else vectors, rngs=nnx.Rngs(0))
  return cls(emb, CLASSES, rngs=nnx.Rngs(1), **kw)


BUILDS = {"cnn": (KimCNN, "multichannel", dict(filter_widths=(2, 4), num_filters=5)),
          "lstm": (LSTMClassifier, "rand", dict(hidden=8, bidirectional=True)),
          "hybrid": (CNNLSTM, "static", dict(filter_widths=(3,), num_filters=6, hidden=8))}


@functools.cache
def _built(name):
  cls, kind, kw = BUILDS[name]
  return _model(cls, kind, **kw)


@pytest.mark.parametrize("name", BUILDS)
def test_attributions_sum_to_the_logit_difference(name):
  """Completeness within 1e-3 relative with 50 Gauss-Legendre points, against logits
  computed by the model itself (for multichannel, only if both channels count)."""
  model = _built(name)
  ids = np.zeros(12, np.int32)
  ids[:9] = np.random.default_rng(3).integers(2, VOCAB, 9)
  full = np.asarray(model(ids[None], np.asarray([9])))[0]
  zero = np.asarray(model.classify(np.zeros((1, 12, model.embed.out_features), np.float32),
                                   np.asarray([9])))[0]
  out = Attributor(*_split(model), steps=50).attribute(ids, 9, [0, 2])
  assert out["attributions"].shape == (2, 9)
  np.testing.assert_allclose(out["logits"], full, rtol=1e-5, atol=1e-5)
  for k, target in enumerate([0, 2]):
    check = completeness(out["attributions"][k], full[target], zero[target], 1e-3)
    assert check["ok"] and abs(check["delta"]) > 1e-2, check
  if name == "cnn":  # one trapezoid interval (the gradient at x only) misses it
    coarse = Attributor(*_split(model), steps=1, rule="trapezoid").attribute(ids, 9, [0])
    assert not completeness(coarse["attributions"][0], full[0], zero[0], 1e-3)["ok"]


def test_path_points_integrate_polynomials():
  for rule, steps in (("gausslegendre", 3), ("trapezoid", 200)):
    alphas, weights = path_points(steps, rule)
    assert abs(float(np.sum(weights * alphas ** 3)) - 0.25) < 1e-4, rule


def test_winning_ngram_is_the_argmax_window_by_hand():
  """Every filter's feature and winning window equal a numpy wide convolution's, and the
  contributions (head weights against their class mean) sum to the centred logits."""
  model = _built("cnn")  # multichannel: a frozen and a trainable table, concatenated
  rng = np.random.default_rng(4)
  ids = np.zeros((3, 10), np.int32)
  lengths = np.asarray([10, 5, 1])
  for row, n in enumerate(lengths):
    ids[row, :n] = rng.integers(2, VOCAB, n)
  winners = FilterWinners(*_split(model), multi_label=False)
  features, starts = winners.winners(ids, lengths)
  table = np.concatenate([np.asarray(model.embed.frozen[...], np.float64),
                          np.asarray(model.embed.trainable[...], np.float64)], axis=1)
  column = 0
  for width, conv in zip((2, 4), model.convs):
    kernel = np.asarray(conv.kernel[...], np.float64)  # [w, D, F]
    bias = np.asarray(conv.bias[...], np.float64)
    for row, n in enumerate(lengths):
      x = np.where(ids[row, :, None] != 0, table[ids[row]], 0.0)
      pad = np.zeros((width - 1, 2 * DIM))
      padded = np.concatenate([pad, x, pad])
      scores = np.stack([np.einsum("kd,kdf->f", padded[t:t + width], kernel)
                         for t in range(n + width - 1)])  # windows that overlap the text
      for f in range(5):
        assert starts[row, column + f] == int(np.argmax(scores[:, f])) - (width - 1)
        np.testing.assert_allclose(features[row, column + f],
                                   max(scores[:, f].max() + bias[f], 0.0), atol=1e-5)
    column += 5
  logits = np.asarray(model(ids, lengths), np.float64)
  head_bias = np.asarray(model.head.bias[...], np.float64)
  centred = (logits - logits.mean(1, keepdims=True)) - (head_bias - head_bias.mean())
  np.testing.assert_allclose(features @ winners.weights, centred, atol=1e-4)


PLANTED = {"zebra": "animal", "violin": "music"}
FILLER = "the a of and to in is it that was for on with as at by this from".split()


def _planted_rows(n, seed, multi_label):
  """Filler texts; each planted word present sets its label (single-label: zebra or not)."""
  rng = random.Random(seed)
  rows = []
  for i in range(n):
    words = [rng.choice(FILLER) for _ in range(rng.randint(5, 12))]
    planted = [w for j, w in enumerate(PLANTED) if (i >> j) & 1] if multi_label else (
        ["zebra"] if i % 2 else [])
    for word in planted:
      words.insert(rng.randrange(len(words) + 1), word)
    if multi_label:
      rows.append({"text": " ".join(words), "labels": [PLANTED[w] for w in planted]})
    else:
      rows.append({"text": " ".join(words), "label": "zebra" if planted else "none"})
  return [r for r in rows if not multi_label or r["labels"]]


def _train(tmp_path_factory, multi_label):
  from textclf_jax.training import loop as train
  d = tmp_path_factory.mktemp("planted_multi" if multi_label else "planted")
  for split, n, seed in (("train", 240, 1), ("dev", 40, 2), ("test", 40, 3)):
    write_jsonl(d / f"{split}.jsonl", _planted_rows(n, seed, multi_label))
  run = str(d / "run")
  # One padded length (texts have at most 14 tokens): one compiled step of each kind.
  train.train_and_evaluate(tiny_config(dataset=str(d), num_epochs=3, filter_widths=(2, 3),
                                       dropout=0.0, max_len=16, bucket_lengths=(16,)), run)
  return run


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
  return _train(tmp_path_factory, multi_label=False)


@pytest.fixture(scope="module")
def planted(planted_run):
  from textclf_jax.serve import explain
  return explain.load(planted_run, steps=30)


def _explain(capsys, args, stdin=None, monkeypatch=None):
  if stdin is not None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
  code, out, err = run_textclf(["explain", *args], capsys)
  assert code == 0, err
  return [json.loads(line) for line in out.strip().splitlines()], err


def test_planted_word_gets_the_largest_attribution(planted_run, tmp_path, capsys, monkeypatch):
  """The command: one JSON line per input line (a blank one gets predict's error row),
  the planted word attributed most and in the top filter's n-gram, and the HTML page."""
  texts = ["the zebra of a cat", "and to it zebra", "zebra was in the", "for that on as at zebra"]
  stdin = "\n".join(texts[:2]) + "\n\n" + "\n".join(texts[2:]) + "\n"
  html = tmp_path / "page.html"
  rows, err = _explain(capsys, [planted_run, "--steps", "30", "--html", str(html)], stdin,
                       monkeypatch)
  assert len(rows) == 5 and rows[2] == {"text": "", "error": "blank line: nothing to classify"}
  for row in rows[:2] + rows[3:]:
    assert row["label"] == "zebra"
    (entry,) = row["explanations"]
    assert entry["label"] == "zebra" and entry["completeness"]["ok"], entry
    assert len(entry["attributions"]) == len(row["tokens"])
    assert row["tokens"][int(np.argmax(entry["attributions"]))] == "zebra", row
    assert "zebra" in entry["filters"][0]["ngram"].split()
  assert rows[0]["unknown"] == [4] and "unknown" not in rows[1]  # "cat": not in the vocabulary
  page = html.read_text()
  assert page.count('class="card"') == 5 and "zebra</span>" in page and "gap" in page
  assert "<script" not in page and "http" not in page  # self-contained


def test_split_ngrams_put_the_planted_word_first(planted):
  from textclf_jax.serve import explain
  entries = explain.split_ngrams(planted, "dev", 2)
  assert [(e["width"], e["label"]) for e in entries] == [(2, "none"), (2, "zebra"),
                                                         (3, "none"), (3, "zebra")]
  for entry in entries:
    if entry["label"] == "zebra":
      assert "zebra" in entry["top"][0]["ngram"].split(), entry
  table = explain.ngrams_markdown(entries, "dev").splitlines()
  assert len(table) == 6 and table[3].startswith("| 2 | zebra | ")


def test_label_option_and_usage_errors(planted, planted_run, capsys):
  from textclf_jax.serve import explain
  (row,) = explain.explain_texts(planted, ["the zebra of a cat"], label="none")
  (entry,) = row["explanations"]
  assert entry["label"] == "none" and entry["predicted"] is False
  assert min(entry["attributions"]) == entry["attributions"][1]  # zebra: against "none"
  for args, message in ((["--label", "cat", "x"], "not a label of"),
                        (["--steps", "0", "x"], "--steps 0"),
                        (["--dataset_split", "dev", "x"], "give no texts")):
    code, _, err = run_textclf(["explain", planted_run, *args], capsys)
    assert code == 2 and message in err, err


def test_multi_label_explains_each_predicted_label(tmp_path_factory, capsys):
  run = _train(tmp_path_factory, multi_label=True)
  capsys.readouterr()
  rows, _ = _explain(capsys, [run, "--steps", "30", "the violin of a zebra in it"])
  row = rows[0]
  assert sorted(row["labels"]) == ["animal", "music"]
  by_label = {e["label"]: e for e in row["explanations"]}
  assert set(by_label) == {"animal", "music"}
  for label, word in (("animal", "zebra"), ("music", "violin")):
    attributions = by_label[label]["attributions"]
    assert row["tokens"][int(np.argmax(attributions))] == word
    assert by_label[label]["completeness"]["ok"]

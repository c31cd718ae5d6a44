"""experiments/versus_linear.py: tune on dev, the best config on seeds (or folds x seeds),
their ensemble, TF-IDF on the same split, the dev-chosen entry against TF-IDF. On tiny
data in --quick mode: the command runs end to end; the row's numbers are what `textclf
eval`, `eval --ensemble` and experiments/report.py give on the same runs; the choice is
the same when the test labels are permuted; a second start re-runs nothing finished."""

import json
import os
import random

import numpy as np
import pytest

from conftest import make_rows, run_textclf, write_jsonl
from textclf_jax.run import layout as rundir

from experiments import report, versus_linear
from experiments.spec import Experiment

pytest.importorskip("optuna")
pytest.importorskip("sklearn")

TINY = ["max_len=16", "bucket_lengths=16", "embed_dim=16", "num_filters=8",
        "log_every_steps=5", "checkpoint_every_steps=1000"]


def _command(data, root, *extra):
  return ["--dataset", str(data), "--data_dir", "", "--models", "cnn", "--trials", "2",
          "--seeds", "2", "--quick", "--root", str(root), "--set", *TINY, *extra]


def _data(directory, permute_test=False):
  directory.mkdir()
  write_jsonl(directory / "train.jsonl", make_rows(300, 1))
  write_jsonl(directory / "dev.jsonl", make_rows(60, 2))
  test = make_rows(90, 3)
  if permute_test:
    labels = [r["label"] for r in test]
    random.Random(0).shuffle(labels)
    test = [{**r, "label": y} for r, y in zip(test, labels)]
  write_jsonl(directory / "test.jsonl", test)
  return directory


@pytest.fixture(scope="module")
def made(tmp_path_factory):
  base = tmp_path_factory.mktemp("versus_linear")
  data = _data(base / "data")
  record = versus_linear.main(_command(data, base / "runs"))
  return {"base": base, "data": data, "root": base / "runs", "record": record}


def _results_files(root):
  out = {}
  for dirpath, _, files in os.walk(root):
    if rundir.RESULTS in files:
      file = os.path.join(dirpath, rundir.RESULTS)
      out[file] = os.stat(file).st_mtime_ns
  return out


def _eval(capsys, *args):
  code, out, err = run_textclf(["eval", *args], capsys)
  assert code == 0, err
  return json.loads(out[:out.rindex("}") + 1])


def test_the_command_writes_the_row_and_its_record(made):
  record, directory = made["record"], made["root"] / "data"
  assert record["dataset"] == "data" and record["seeds"] == [0, 1] and record["folds"] is None
  cnn = record["models"]["cnn"]
  assert cnn["trials"]["finished"] == 2 and len(cnn["runs"]) == 2
  assert cnn["single"]["n"] == 2 and cnn["ensemble"]["n"] == 1
  assert record["best"]["entry"] in ("cnn", "cnn ensemble")
  assert json.loads((directory / "row.json").read_text()) == record  # strict JSON, no NaN
  text = (directory / "row.md").read_text()
  assert text.startswith(versus_linear.HEADER)
  assert "| data | " in text and "trial" in text and "Command: `python -m" in text
  ledger = json.loads((directory / "cpu.json").read_text())["invocations"]
  assert ledger[0]["cpu_seconds"] > 0 and len(ledger[0]["load_start"]) == 3


def test_the_row_is_what_eval_ensemble_and_report_give(made, capsys):
  record = made["record"]
  cnn, tfidf = record["models"]["cnn"], record["tfidf"]
  seeds = cnn["runs"]
  singles = [_eval(capsys, w)["accuracy"] for w in seeds]
  assert [u["test"] for u in cnn["single"]["per_unit"]] == singles
  assert cnn["single"]["test"] == pytest.approx(np.mean(singles), abs=1e-12)
  for split in ("test", "dev"):
    together = _eval(capsys, seeds[0], "--ensemble", ",".join(seeds[1:]), "--split", split)
    assert cnn["ensemble"]["per_unit"][0][split] == pytest.approx(
        together["ensemble"]["accuracy"], abs=1e-12)
  tfidf_test = _eval(capsys, tfidf["runs"][0])["accuracy"]
  assert tfidf["test"] == tfidf_test

  # experiments/report.py on the same runs: the seeds against TF-IDF (which pairs with each).
  exp = Experiment(name="x", preset="cnn", variants={"cnn": []}, datasets={"data": []},
                   baselines={"tfidf": []}, reference="tfidf")
  rows = [{"variant": "cnn", "dataset": "data", "unit": f"seed_{s}", "accuracy": acc,
           "workdir": w} for s, (w, acc) in enumerate(zip(seeds, singles))]
  rows += [{"variant": "tfidf", "dataset": "data", "unit": f"seed_{s}",
            "accuracy": tfidf_test, "workdir": tfidf["runs"][0]} for s in range(len(seeds))]
  summary = report.summarise(exp, rows)
  mean, std, n = summary[("cnn", "data")]["accuracy"]
  assert (mean, std, n) == pytest.approx((100 * cnn["single"]["test"],
                                          100 * cnn["single"]["test_std"], 2))
  expected = summary.significance[("cnn", "data")]["accuracy"]
  got = cnn["single"]["vs_tfidf"]
  for key in ("n", "delta", "low", "high", "t_p", "wilcoxon_p"):
    assert got[key] == pytest.approx(expected[key], nan_ok=True), key
  for key in ("delta", "low", "high", "p", "examples"):
    assert got["bootstrap"][key] == pytest.approx(expected["bootstrap"][key]), key
  # The ensemble: one unit (no t-test); the bootstrap's Δ is its accuracy minus TF-IDF's.
  ens = cnn["ensemble"]["vs_tfidf"]
  assert ens["t_p"] is None and ens["bootstrap"]["delta"] == pytest.approx(
      100 * (cnn["ensemble"]["test"] - tfidf_test))
  chosen = cnn["single" if record["best"]["kind"] == "single" else "ensemble"]
  assert record["best"]["vs_tfidf"] == chosen["vs_tfidf"]
  assert record["best"]["dev"] == max(cnn["single"]["dev"], cnn["ensemble"]["dev"])


def test_the_choice_never_reads_test_labels(made):
  data = _data(made["base"] / "permuted", permute_test=True)
  other = versus_linear.main(_command(data, made["base"] / "permuted_runs"))
  record = made["record"]
  for key in ("entry", "dev"):
    assert other["best"][key] == record["best"][key]
  a, b = record["models"]["cnn"], other["models"]["cnn"]
  assert (a["trial"], a["params"], a["trial_dev"]) == (b["trial"], b["params"], b["trial_dev"])
  for kind in ("single", "ensemble"):
    assert [u["dev"] for u in a[kind]["per_unit"]] == [u["dev"] for u in b[kind]["per_unit"]]
  assert other["tfidf"]["dev"] == record["tfidf"]["dev"]
  # ... while the test scores did change (the permutation reached them).
  assert other["tfidf"]["test"] != record["tfidf"]["test"]


def test_a_second_start_re_runs_nothing_finished(made, capsys):
  before = _results_files(made["root"])
  record = versus_linear.main(_command(made["data"], made["root"]))
  out = capsys.readouterr().out
  assert _results_files(made["root"]) == before
  assert "2 of 2 trials finished" in out and "tune: trial" not in out
  assert {k: v for k, v in record.items() if k != "cpu"} == \
      {k: v for k, v in made["record"].items() if k != "cpu"}
  assert record["cpu"]["invocations"] == 2

  # A seed's run lost (as if killed before it started) and TF-IDF's half-written: only
  # they are made again.
  seed_1 = record["models"]["cnn"]["runs"][1]
  for file in os.listdir(seed_1):
    path = os.path.join(seed_1, file)
    if os.path.isfile(path):
      os.remove(path)
    else:
      import shutil
      shutil.rmtree(path)
  tfidf = os.path.join(record["tfidf"]["runs"][0], rundir.RESULTS)
  os.remove(tfidf)
  again = versus_linear.main(_command(made["data"], made["root"]))
  after = _results_files(made["root"])
  changed = {f for f in after if before.get(f) != after[f]}
  assert changed == {os.path.join(seed_1, rundir.RESULTS), tfidf}
  assert again["best"]["entry"] == record["best"]["entry"]


def test_a_cross_validated_dataset_tunes_fold_0_and_reports_over_folds(tmp_path):
  data = tmp_path / "cv"
  data.mkdir()
  write_jsonl(data / "all.jsonl", make_rows(250, 4, with_fold=True))
  record = versus_linear.main(
      ["--dataset", str(data), "--data_dir", "", "--models", "cnn", "--trials", "1",
       "--seeds", "2", "--quick", "--root", str(tmp_path / "runs"), "--set", *TINY])
  assert record["folds"] == [0, 1]  # --quick: the first two folds
  tune = json.loads((tmp_path / "runs" / "cv" / "cnn" / "tune" / "tune.json").read_text())
  assert tune["base_config"]["fold"] == 0
  cnn = record["models"]["cnn"]
  assert len(cnn["runs"]) == 4 and cnn["single"]["n"] == 2 and cnn["ensemble"]["n"] == 2
  assert [rundir.read_fold(w) for w in cnn["runs"]] == [0, 0, 1, 1]
  assert [u["fold"] for u in record["tfidf"]["per_unit"]] == [0, 1]
  for kind in ("single", "ensemble"):  # paired over the two folds
    assert cnn[kind]["vs_tfidf"]["n"] == 2
  # The pooled bootstrap resamples every test example of both folds once.
  sizes = sum(len(rundir.read_predictions(w, "test")[1]) for w in record["tfidf"]["runs"])
  assert cnn["single"]["vs_tfidf"]["bootstrap"]["examples"] == sizes


def test_the_bag_learns_its_own_table_and_starts_from_its_preset(tmp_path, capsys):
  """--models bag: the fasttext_nb preset (its own n-gram table, so --vectors and the
  embedding mode are not passed to it, while the CNN gets them), the preset's settings
  as the first trial, and a row whose bag column and config summary are filled."""
  data = _data(tmp_path / "data")
  vectors = tmp_path / "vectors.txt"
  vectors.write_text("".join(f"w{i} " + " ".join(["0.1"] * 16) + "\n" for i in range(20)))
  command = ["--dataset", str(data), "--data_dir", "", "--models", "bag,cnn", "--trials",
             "1", "--seeds", "2", "--quick", "--root", str(tmp_path / "runs"),
             "--vectors", str(vectors), "--set", "max_len=16", "bucket_lengths=16",
             "log_every_steps=5"]
  plan = versus_linear.make_plan(versus_linear.parser().parse_args(command))
  preset, bag = versus_linear.network_base(plan, "bag")
  assert preset == "fasttext_nb" and bag.model == "fasttext" and not bag.vectors
  assert versus_linear.network_base(plan, "cnn")[1].vectors == str(vectors)
  first = versus_linear.preset_params("bag", bag)
  assert first == [{"adagrad_learning_rate": bag.learning_rate, "num_epochs": bag.num_epochs,
                    "word_ngrams": bag.word_ngrams, "embed_dim": bag.embed_dim,
                    "nb_prior": bag.nb_prior, "dropout": bag.dropout,
                    "batch_size": bag.batch_size}]
  plan.models = ("bag",)
  record = versus_linear.run(plan)
  m = record["models"]["bag"]
  assert m["trial"] == 0 and m["params"] == first[0]  # one trial: the preset's
  assert "-grams" in m["config_summary"] and m["ensemble"]["n"] == 1
  row = (tmp_path / "runs" / "data" / "row.md").read_text().splitlines()[2].split(" | ")
  assert row[1:4] == ["–"] * 3 and row[4].startswith(f"{100 * m['single']['test']:.1f} ±")
  assert record["all_ensemble"] is None  # one model: no all-model entry

  # With the CNN too, every run of both models is one more candidate ensemble, whose
  # numbers are `textclf eval --ensemble` over the four runs, and it can be chosen.
  plan.models = ("bag", "cnn")
  record = versus_linear.run(plan)
  capsys.readouterr()  # the printed row
  runs = record["models"]["bag"]["runs"] + record["models"]["cnn"]["runs"]
  everything = record["all_ensemble"]
  assert everything["members"] == ["bag", "cnn"] and everything["n"] == 1
  for split in ("dev", "test"):
    together = _eval(capsys, runs[0], "--ensemble", ",".join(runs[1:]), "--split", split)
    assert everything["per_unit"][0][split] == pytest.approx(
        together["ensemble"]["accuracy"], abs=1e-12)
  candidates = [everything["dev"]] + [record["models"][m][k]["dev"] for m in ("bag", "cnn")
                                      for k in ("single", "ensemble")]
  assert record["best"]["dev"] == max(candidates)
  if record["best"]["entry"] == "all-model ensemble":
    assert record["best"]["vs_tfidf"] == everything["vs_tfidf"]
  row = (tmp_path / "runs" / "data" / "row.md").read_text().splitlines()[2].split(" | ")
  assert row[5] == f"{100 * everything['test']:.1f}"

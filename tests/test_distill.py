"""Knowledge distillation (config.teacher): the loss by hand, teachers of both families,
unlabelled texts, the checks, resume, vmapped groups and device-count invariance."""

import json
import os
import shutil
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (REPO, make_rows, run_on_eight_devices, tiny_config, tiny_tfidf_run,
                      write_jsonl)
from textclf_jax.data.readers import read_texts
from textclf_jax.errors import ConfigError, DataError
from textclf_jax.families import registry
from textclf_jax.families.distill import Teacher
from textclf_jax.run import layout as rundir
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.training import checks, losses
from textclf_jax.training.group import members as group_members


# --- the loss, by hand ------------------------------------------------------------------


def test_soft_loss_single_label_by_hand():
  logits = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], np.float32)
  probs = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], np.float32)  # zeros: 0 log 0 = 0
  t = 2.0
  got = np.asarray(losses.soft_loss(jnp.asarray(logits), jnp.asarray(probs), t, False))
  # row 0: q = sqrt(p) / sum(sqrt(p)); KL(q || softmax(z / 2)) x 4
  q = np.sqrt([0.7, 0.2, 0.1]) / np.sqrt([0.7, 0.2, 0.1]).sum()
  s = np.exp([0.5, 0.0, -0.5]) / np.exp([0.5, 0.0, -0.5]).sum()
  row0 = 4 * np.sum(q * np.log(q / s))
  # row 1: q = one-hot on label 1: KL = -log softmax(z / 2)[1], x 4
  s1 = np.exp([0.25, 1.0, 0.0]) / np.exp([0.25, 1.0, 0.0]).sum()
  row1 = -4 * np.log(s1[1])
  np.testing.assert_allclose(got, [row0, row1], rtol=1e-5)
  # T = 1: the plain KL to p itself
  got1 = float(losses.soft_loss(jnp.asarray(logits[:1]), jnp.asarray(probs[:1]), 1.0, False)[0])
  p, z = probs[0].astype(np.float64), logits[0].astype(np.float64)
  s = np.exp(z) / np.exp(z).sum()
  np.testing.assert_allclose(got1, np.sum(p * np.log(p / s)), rtol=1e-5, atol=1e-7)
  assert abs(float(losses.soft_loss(jnp.log(jnp.asarray(probs[:1])), jnp.asarray(probs[:1]),
                                    1.0, False)[0])) < 1e-6  # a perfect student: 0


def test_soft_loss_multi_label_and_mixture_by_hand():
  logits = np.array([[2.0, -1.0]], np.float32)
  probs = np.array([[0.9, 0.2]], np.float32)
  t = 2.0
  got = float(losses.soft_loss(jnp.asarray(logits), jnp.asarray(probs), t, True)[0])
  sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
  q = sig(np.log(probs[0] / (1 - probs[0])) / t)  # p^(1/T) / (p^(1/T) + (1-p)^(1/T))
  np.testing.assert_allclose(q, probs[0] ** 0.5 / (probs[0] ** 0.5 + (1 - probs[0]) ** 0.5),
                             rtol=1e-6)
  s = sig(logits[0] / t)
  bce = -np.mean(q * np.log(s) + (1 - q) * np.log(1 - s))
  np.testing.assert_allclose(got, 4 * bce, rtol=1e-5)
  # alpha x hard where labelled + (1 - alpha) x soft everywhere
  hard = jnp.asarray([1.5, 7.0])
  soft = losses.soft_loss(jnp.asarray([[1.0, 0.0], [0.0, 1.0]]), jnp.asarray([[0.6, 0.4]] * 2),
                          2.0, False)
  mixed = losses.distill_loss(hard, jnp.asarray([[1.0, 0.0], [0.0, 1.0]]),
                              jnp.asarray([[0.6, 0.4]] * 2), jnp.asarray([1.0, 0.0]), 2.0, 0.25,
                              False)
  np.testing.assert_allclose(np.asarray(mixed), [0.25 * 1.5 + 0.75 * float(soft[0]),
                                                 0.75 * float(soft[1])], rtol=1e-6)


def test_settings_off_without_the_keys():
  assert losses.distill_settings(tiny_config()) is None  # teacher "": off
  assert losses.distill_settings(tiny_config("tfidf")) is None  # a config without the keys
  assert losses.distill_settings(tiny_config(teacher="r", distill_temperature=3.0,
                                             distill_alpha=0.0)) == (3.0, 0.0)


# --- config checks, unlabelled files ----------------------------------------------------------


def test_config_checks_and_group_refusal(tmp_path):
  found = checks.problems(tiny_config(distill_temperature=0.0, distill_alpha=1.5,
                                      distill_unlabelled="u.txt"))
  assert any("distill_temperature=0.0" in p for p in found)
  assert any("distill_alpha=1.5" in p for p in found)
  assert any("distill_unlabelled='u.txt'" in p and "set config.teacher" in p for p in found)
  config = tiny_config(teacher="runs/t")
  assert not checks.problems(config)
  with pytest.raises(ValueError, match="vmapped groups .* do not take a teacher"):
    group_members.check_group([config, config], [str(tmp_path / "a"), str(tmp_path / "b")])


def test_unlabelled_files(tmp_path):
  plain = tmp_path / "u.txt"
  plain.write_text("one text\n\nanother text\n")
  assert read_texts(str(plain)) == ["one text", "another text"]
  good = tmp_path / "u.jsonl"
  good.write_text('{"body": "a"}\n"b"\n')
  assert read_texts(str(good), "body") == ["a", "b"]
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "a"}\n{"text": 3}\n')
  with pytest.raises(DataError, match=r"bad.jsonl:2: expected a JSON object with a string"):
    read_texts(str(bad))
  bad.write_text('{"text": "a"}\n\n{"text": "b"\n')
  with pytest.raises(DataError, match=r"bad.jsonl:3: invalid JSON"):
    read_texts(str(bad))


# --- runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  d = tmp_path_factory.mktemp("distill") / "topics"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(150, 1))
  write_jsonl(d / "dev.jsonl", make_rows(30, 2))
  write_jsonl(d / "test.jsonl", make_rows(45, 3))
  return str(d)


@pytest.fixture(scope="module")
def cnn_teacher(data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("teacher") / "cnn")
  config = tiny_config(dataset=data, num_epochs=2)
  registry.for_config(config).train(config, workdir)
  return workdir


def _train(config, workdir, **kw):
  return registry.for_config(config).train(config, workdir, **kw)


def _calibrated(run, texts):
  loaded = registry.load(run)
  probs = loaded.text_probs(texts)
  if loaded.calibration is not None:
    probs = calibration_lib.apply_temperature(probs, loaded.calibration["temperature"], False)
  return probs


def _train_texts(data):
  return [json.loads(l)["text"] for l in open(os.path.join(data, "train.jsonl"))]


def test_student_of_a_cnn_teacher_with_unlabelled_texts(data, cnn_teacher, tmp_path):
  unlabelled = tmp_path / "more.txt"
  extra = [r["text"] for r in make_rows(20, 9)]
  unlabelled.write_text("\n".join(extra) + "\n")
  workdir = str(tmp_path / "student")
  config = tiny_config(dataset=data, num_epochs=1, teacher=cnn_teacher,
                       distill_unlabelled=str(unlabelled))
  results = _train(config, workdir)
  lines = [json.loads(l) for l in open(rundir.path(workdir, "metrics.jsonl"))]
  assert all(np.isfinite(l["train"]["loss"]) for l in lines if "train" in l)
  record = rundir.read_json(rundir.path(workdir, rundir.DATA))["distillation"]
  teacher_results = rundir.read_results(cnn_teacher)
  assert record["teachers"] == [{"run": cnn_teacher, "model": "cnn", "calibrated": True,
                                 "test": {k: teacher_results["test"][k]
                                          for k in ("accuracy", "macro_f1", "micro_f1")}}]
  assert (record["temperature"], record["alpha"]) == (2.0, 0.5)
  assert record["num_unlabelled"] == 20 and record["num_targets"] == 170
  saved = rundir.read_teacher_probs(workdir)
  assert saved.dtype == np.float32 and saved.shape == (170, 3)
  expected = _calibrated(cnn_teacher, _train_texts(data) + extra)
  np.testing.assert_allclose(saved, expected, rtol=1e-6, atol=1e-7)
  # epoch = ceil(170 / 16) steps: the unlabelled texts are trained on
  assert results["final_step"] == 11


def test_tfidf_and_cnn_ensemble_teacher(data, cnn_teacher, tmp_path):
  tfidf = tiny_tfidf_run(data, str(tmp_path / "tfidf"))
  teacher = Teacher(f"{tfidf},{cnn_teacher}")
  texts = _train_texts(data)[:7]
  from textclf_jax.data.sources import load_source
  from textclf_jax.data.splits import make_splits
  config = tiny_config(dataset=data)
  splits = make_splits(load_source(config), config)
  names = ["money", "sport", "tech"]
  got = teacher.targets(texts, names, False, splits)
  expected = (_calibrated(tfidf, texts).astype(np.float64)
              + _calibrated(cnn_teacher, texts).astype(np.float64)) / 2
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # a student of the TF-IDF teacher alone trains and records it
  workdir = str(tmp_path / "student")
  _train(tiny_config(dataset=data, num_epochs=1, teacher=tfidf, distill_alpha=0.0), workdir)
  record = rundir.read_json(rundir.path(workdir, rundir.DATA))["distillation"]
  assert [t["run"] for t in record["teachers"]] == [tfidf]
  assert record["teachers"][0]["model"] == "tfidf" and record["alpha"] == 0.0


def test_bad_teachers_and_files_fail_before_the_run_directory(data, tmp_path):
  other = tmp_path / "other"
  other.mkdir()
  for name, rows in (("train", make_rows(60, 4)), ("test", make_rows(15, 5))):
    for r in rows:
      r["label"] = {"sport": "sports"}.get(r["label"], r["label"])
    write_jsonl(other / f"{name}.jsonl", rows)
  mismatched = tiny_tfidf_run(str(other), str(tmp_path / "mismatched"))
  workdir = tmp_path / "student"
  with pytest.raises(DataError, match=f"config.teacher: the labels of {mismatched} differ.*"
                     r"extra: \['sports'\], missing: \['sport'\]"):
    _train(tiny_config(dataset=data, teacher=mismatched), str(workdir))
  assert not workdir.exists()
  # a teacher trained on the student's test texts
  leaky_data = tmp_path / "leaky"
  leaky_data.mkdir()
  write_jsonl(leaky_data / "train.jsonl", make_rows(150, 1) + make_rows(45, 3))
  write_jsonl(leaky_data / "test.jsonl", make_rows(15, 5))
  leaky = tiny_tfidf_run(str(leaky_data), str(tmp_path / "leaky_run"))
  with pytest.raises(DataError, match=f"{leaky} was trained on .* of this run's dev/test texts"):
    _train(tiny_config(dataset=data, teacher=leaky), str(workdir))
  # unlabelled texts with a malformed line
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "a b"}\n[1, 2]\n')
  with pytest.raises(DataError, match=r"bad.jsonl:2:"):
    _train(tiny_config(dataset=data, teacher=mismatched, distill_unlabelled=str(bad)),
           str(workdir))
  with pytest.raises(DataError, match="config.teacher: .*nope"):
    _train(tiny_config(dataset=data, teacher=str(tmp_path / "nope")), str(workdir))
  assert not workdir.exists()
  from textclf_jax.training import loop
  with pytest.raises(ConfigError, match="loaded by the neural family"):
    loop.train_and_evaluate(tiny_config(dataset=data, teacher=mismatched), str(workdir))


def test_killed_distilled_run_resumes_bit_identical_without_its_teacher(
    data, cnn_teacher, tmp_path, monkeypatch):
  """Stopped after the checkpoint at step 8 of 10 and resumed (its teacher deleted
  meanwhile: the saved targets are read), a run ends as one never interrupted."""
  import orbax.checkpoint as ocp
  copy = str(tmp_path / "teacher_copy")
  shutil.copytree(cnn_teacher, copy)
  config = tiny_config(dataset=data, num_epochs=1, teacher=copy, distill_temperature=3.0,
                       checkpoint_every_steps=4, early_stopping_patience=0)
  straight = str(tmp_path / "straight")
  _train(config, straight)

  save = ocp.CheckpointManager.save

  def save_then_stop(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if step == 8 and os.path.basename(str(self.directory)) == "latest":
      raise KeyboardInterrupt(f"stopped after saving step {step}")
    return saved

  killed = str(tmp_path / "killed")
  monkeypatch.setattr(ocp.CheckpointManager, "save", save_then_stop)
  with pytest.raises(KeyboardInterrupt):
    _train(config, killed)
  monkeypatch.undo()
  assert not os.path.exists(rundir.path(killed, rundir.RESULTS))
  shutil.rmtree(copy)  # the resumed run reads its saved targets
  resumed = _train(rundir.load_config(killed), killed, resume=True)
  expected = rundir.read_results(straight)
  for key in ("dev", "test", "best_step", "final_step"):
    assert resumed[key] == expected[key], key
  for split in ("dev", "test"):
    a, b = rundir.read_predictions(straight, split)[0], rundir.read_predictions(killed, split)[0]
    assert np.array_equal(a, b), split
  assert np.array_equal(rundir.read_teacher_probs(straight), rundir.read_teacher_probs(killed))


# --- 8 simulated devices ---------------------------------------------------------------------

EIGHT_DEVICES = textwrap.dedent("""
    import json, sys, dataclasses
    import numpy as np
    import jax
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from textclf_jax.training import build
    from textclf_jax.runtime import parallel
    from textclf_jax.training import steps as steps_lib
    from textclf_jax.data.pipeline import prepare
    assert jax.device_count() == 8, jax.devices()
    config = tiny_config("cnn", dataset={data!r}, batch_size=12, dropout=0.0, teacher="t",
                         distill_alpha=0.3)
    prepared = prepare(config)
    train = prepared.splits["train"]
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(3), len(train)).astype(np.float32)
    labelled = (np.arange(len(train)) % 4 != 0).astype(np.float32)  # every 4th: unlabelled
    data = dataclasses.replace(train, soft=soft, labelled=labelled)
    out = {{}}
    for devices in (1, 8):
      mesh = parallel.make_mesh(1, num_devices=devices)
      steps, state = build.make_steps(config, prepared.encoder.vocab_size, 3, False, mesh, 100)
      batcher = build.make_batcher(config, mesh)
      losses, correct = [], 0.0
      for index in batcher.train_plan(data, seed=0, epoch=0)[:4]:
        batch = build.device_batch(batcher, data, index, mesh)
        assert set(batch) == {{"tokens", "lengths", "labels", "weights", "soft", "labelled"}}
        state, m = steps.train_step(state, batch, steps_lib.init_metrics())
        m = jax.device_get(m)
        losses.append(float(m["loss_sum"] / m["count"]))
        correct += float(m["correct"])
      out[devices] = {{"losses": losses, "correct": correct, "rows": batch["tokens"].shape[0]}}
    print(json.dumps(out))
""")


def test_eight_simulated_devices_match_one_with_soft_targets(data):
  """Distilled steps (soft targets, a quarter of the texts unlabelled) give the same
  losses on 8 devices (a batch of 12 padded to 16 rows) as on 1."""
  script = EIGHT_DEVICES.format(tests=os.path.join(REPO, "tests"), data=data)
  out = run_on_eight_devices(script)
  one, eight = out["1"], out["8"]
  assert eight["rows"] == 16 and one["rows"] == 12
  assert all(np.isfinite(one["losses"]))
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-6, atol=1e-6)
  assert eight["correct"] == one["correct"]


def test_transfer_set_is_seeded_and_new():
  """experiments.augment: the same seed writes the same variants; none is a training
  text or a duplicate, and the mask token is one no vocabulary holds."""
  from experiments.augment import MASK, augment
  texts = ["a fine film with a great cast", "dull and long", "great"]
  one, two = augment(texts, 5, seed=3), augment(texts, 5, seed=3)
  assert one == two and len(set(one)) == len(one)
  assert not set(one) & set(texts)
  assert any(MASK in t for t in augment(texts * 1, 20, seed=0, p_mask=0.5))

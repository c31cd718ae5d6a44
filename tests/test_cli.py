"""The command line: errors exit 2 with a message naming the culprit; W&B offline;
the persistent compilation cache."""

import glob
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import XLA_TEST_FLAGS, tiny_config
from textclf_jax.cli import main as cli
from textclf_jax.run import log as runlog


def _main(args, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(args)
  return exit_info.value.code, capsys.readouterr().err


def test_unknown_config_key_exits_2_naming_it(capsys):
  code, err = _main(["train", "--config.num_epohcs=3"], capsys)
  assert code == 2 and "num_epohcs" in err


def test_bad_data_file_exits_2_naming_file_and_line(tmp_path, capsys):
  bad = tmp_path / "train.jsonl"
  bad.write_text('{"text": "a", "label": "x"}\n{oops}\n')
  code, err = _main(["train", f"--config.dataset={tmp_path}", "--workdir",
                     str(tmp_path / "run")], capsys)
  assert code == 2 and "train.jsonl:2: invalid JSON" in err


def test_eval_on_a_non_run_exits_2(tmp_path, capsys):
  code, err = _main(["eval", str(tmp_path)], capsys)
  assert code == 2 and "not a run directory" in err


def test_overrides_only_for_train(tmp_path, capsys):
  code, err = _main(["eval", str(tmp_path), "--config.seed=1"], capsys)
  assert code == 2 and err == \
      "textclf: error: --config.* overrides apply to `train` and `tune` only\n"


def test_predict_reads_stdin_keeping_blank_lines_and_takes_options_anywhere(
    topic_dir, tmp_path, capsys, monkeypatch):
  from textclf_jax.training import loop as train
  run = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(dataset=topic_dir, num_epochs=3), run)
  capsys.readouterr()
  monkeypatch.setattr("sys.stdin", io.StringIO("the goal of the match\n\nstock market\n"))
  cli.main(["predict", run, "--top_k", "1"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 3 and '"label": "sport"' in lines[0] and '"label": "money"' in lines[2]
  assert json.loads(lines[1]) == {"text": "", "error": "blank line: nothing to classify"}
  cli.main(["predict", run, "--top_k", "1", "the goal of the match"])  # issue 15, item 6
  row = json.loads(capsys.readouterr().out)
  assert row["label"] == "sport" and list(row["probabilities"]) == ["sport"]


def test_wandb_offline_writes_a_local_run(tmp_path, monkeypatch):
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.delenv("WANDB_MODE", raising=False)
  assert runlog.wandb_mode("auto") == "offline"
  logger = runlog.RunLogger(str(tmp_path), tiny_config(wandb="offline"))
  logger.log(1, train={"loss": 0.5})
  logger.summary({"test": {"accuracy": 0.9}})
  logger.close()
  assert glob.glob(os.path.join(tmp_path, "wandb", "offline-run-*"))
  assert '"loss": 0.5' in open(os.path.join(tmp_path, "metrics.jsonl")).read()


def test_host_memory_tuning_is_glibc_only_and_can_be_turned_off():
  """Checked in a process of its own: mallopt changes the whole process."""
  import platform
  import subprocess
  import sys
  code = "from textclf_jax.runtime import hostmem; print(hostmem.keep_heap_mapped())"
  for setting, expected in (("0", False), ("1", platform.libc_ver()[0] == "glibc")):
    env = dict(os.environ, TEXTCLF_MALLOC_TUNING=setting)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    assert out == str(expected), (setting, out)


def test_compilation_cache_is_filled_then_used_with_identical_results(topic_dir, tmp_path):
  """Two `textclf train` processes sharing TEXTCLF_COMPILATION_CACHE: the first
  writes the compiled steps, the second loads them (no new entries) and its run
  ends with exactly the same metrics; `off` writes nothing. The processes compile at the
  suite's optimisation level (conftest.XLA_TEST_FLAGS), as every program tests start does:
  what is cached does not depend on it, and at XLA's default level the three runs took
  53 CPU s instead of 32."""
  cache = tmp_path / "cache"

  def train_run(name, cache_setting):
    env = {**os.environ, "TEXTCLF_COMPILATION_CACHE": cache_setting, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": XLA_TEST_FLAGS, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the suite's cache (conftest): not here
    workdir = str(tmp_path / name)
    subprocess.run([sys.executable, "-m", "textclf_jax", "train", "--workdir", workdir,
                    f"--config.dataset={topic_dir}", "--config.num_epochs=2",
                    "--config.embed_dim=16", "--config.num_filters=8", "--config.max_len=24",
                    "--config.bucket_lengths=(8,16,24)", "--config.wandb=disabled",
                    "--config.progress_bar=False"], env=env, check=True, capture_output=True)
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
      results = json.load(f)
    return {split: results[split] for split in ("dev", "test")}

  first = train_run("first", str(cache))
  entries = sorted(os.listdir(cache))
  assert entries, "the first run wrote no compiled program"
  assert train_run("second", str(cache)) == first
  assert sorted(os.listdir(cache)) == entries  # every program came from the cache
  assert train_run("off", "off") == first
  assert sorted(os.listdir(cache)) == entries


def test_a_multi_label_run_prints_both_threshold_modes(capsys):
  """results.json holds the test scores under both threshold modes; the end of a run
  prints both, not only the configured one."""
  scores = {"micro_f1": 0.5, "macro_f1": 0.25, "num_examples": 4}
  cli._print_results({
      "test": scores, "best_step": 3, "train_examples_per_second": 10.0,
      "wall_seconds": 1.0,
      "by_threshold_mode": {"global": {"dev": scores, "test": {**scores, "micro_f1": 0.6}},
                            "per_label": {"dev": scores, "test": {**scores, "macro_f1": 0.3}}}})
  out = capsys.readouterr().out
  assert "test with global thresholds: micro_f1 0.6000, macro_f1 0.2500" in out
  assert "test with per_label thresholds: micro_f1 0.5000, macro_f1 0.3000" in out

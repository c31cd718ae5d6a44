"""The command line: errors exit 2 with a message naming the culprit; W&B offline."""

import glob
import io
import os

import pytest

from conftest import tiny_config
from textclf_jax import cli, runlog


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
  code = _main(["eval", str(tmp_path), "--config.seed=1"], capsys)[0]
  assert "`train` only" in str(code)


def test_predict_reads_stdin(topic_dir, tmp_path, capsys, monkeypatch):
  from textclf_jax import train
  run = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(dataset=topic_dir, num_epochs=3), run)
  capsys.readouterr()
  monkeypatch.setattr("sys.stdin", io.StringIO("the goal of the match\n\nstock market\n"))
  cli.main(["predict", run, "--top_k", "1"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2 and '"label": "sport"' in lines[0] and '"label": "money"' in lines[1]


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


def test_host_memory_tuning_is_glibc_only_and_can_be_turned_off(monkeypatch):
  import platform
  from textclf_jax import hostmem
  monkeypatch.setenv("TEXTCLF_MALLOC_TUNING", "0")
  assert hostmem.keep_heap_mapped() is False
  monkeypatch.delenv("TEXTCLF_MALLOC_TUNING")
  assert hostmem.keep_heap_mapped() is (platform.libc_ver()[0] == "glibc")

"""CPU seconds per training epoch of a frozen contextual model, with and without the
encoder cache (config.encoder_cache; docs/encoders.md, "Frozen encoder cache").

    python bench/encoder_cache.py WORKDIR --config cnn --config.embedding=contextual ... \
        --config.encoder_cache=auto|off

Trains one run with `train_and_evaluate` and prints, per epoch, the process CPU seconds of
its training steps alone (dev evaluation excluded; epoch 1 includes compiling the step),
the CPU seconds the cache took to compute, and the 1-minute load average before and after
(the machine may be shared). CPU seconds count every thread of the process.
"""

from __future__ import annotations

import json
import os
import sys
import time

from textclf_jax.cli import main as cli
from textclf_jax.training import encoder_cache, evaluate, loop, progress


def main(argv):
  workdir, rest = argv[0], argv[1:]
  marks = {"start": None, "ends": [], "eval": 0.0, "cache": 0.0}
  attach, predict, add = encoder_cache.attach, evaluate.predict_probs, \
      progress.RunProgress.add_training

  def timed_attach(*args, **kwargs):
    cpu = time.process_time()
    out = attach(*args, **kwargs)
    marks["cache"] = time.process_time() - cpu
    marks["start"], marks["eval"] = time.process_time(), 0.0
    return out

  def timed_predict(*args, **kwargs):
    cpu = time.process_time()
    out = predict(*args, **kwargs)
    marks["eval"] += time.process_time() - cpu
    return out

  def timed_add(self, seconds, examples):
    now = time.process_time()
    before = marks["ends"][-1][0] if marks["ends"] else marks["start"]
    marks["ends"].append((now, now - before - marks["eval"], seconds))
    marks["eval"] = 0.0
    return add(self, seconds, examples)

  loop.encoder_cache.attach = timed_attach
  loop.evaluate_lib.predict_probs = timed_predict
  progress.RunProgress.add_training = timed_add
  load = os.getloadavg()[0]
  cli.main(["train", "--workdir", workdir, *rest])
  report = {"load_before": load, "load_after": os.getloadavg()[0],
            "cache_cpu_s": round(marks["cache"], 1),
            "epoch_cpu_s": [round(cpu, 1) for _, cpu, _ in marks["ends"]],
            "epoch_wall_s": [round(wall, 1) for _, _, wall in marks["ends"]]}
  print("[bench] " + json.dumps(report), flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])

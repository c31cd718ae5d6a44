"""The accelerator check's child processes (`accelerator_check.py _env | _throughput |
_torch | _tta`): each prints its figures as tagged JSON lines (ENV, ROW, PROGRESS, TTA) as
soon as it has them, so that a time limit keeps what came before it."""

from __future__ import annotations

import json
import os
import sys
import time

from accelerator.spec import HERE


def child_env(args):
  """Versions, devices and measured matmul peaks, as one JSON line."""
  import importlib.metadata as md

  import jax
  import jax.numpy as jnp
  import numpy as np

  versions = {}
  for name in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
               "flax", "optax", "orbax-checkpoint", "numpy", "ml_collections",
               "snowballstemmer", "filelock", "tqdm", "torch", "scikit-learn", "pytest",
               "hypothesis", "wandb"):
    try:
      versions[name] = md.version(name)
    except md.PackageNotFoundError:
      pass
  devices = jax.devices()
  out = {"python": sys.version.split()[0], "versions": versions,
         "backend": jax.default_backend(), "devices": [str(d) for d in devices],
         "device_kind": devices[0].device_kind, "device_count": len(devices),
         "default_matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision",
                                                 "?")),
         "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
  try:
    stats = devices[0].memory_stats() or {}
    out["memory_bytes_limit"] = stats.get("bytes_limit")
  except Exception:  # noqa: BLE001  (CPU devices have none)
    pass
  n = args.matmul_n if jax.default_backend() != "cpu" else min(args.matmul_n, 1024)
  peaks = {}
  for label, dtype, precision in (("bf16", jnp.bfloat16, None), ("fp32_default", jnp.float32, None),
                                  ("fp32_highest", jnp.float32, "highest")):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda x, p=precision: jnp.matmul(x, x, precision=p))
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(args.matmul_repeats):
      y = f(a)
    y.block_until_ready()
    peaks[label] = 2 * n ** 3 * args.matmul_repeats / (time.perf_counter() - start)
  out["matmul_n"] = n
  out["measured_peaks"] = peaks
  try:
    import torch
    out["torch"] = {"version": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else "cpu"}
  except Exception as e:  # noqa: BLE001
    out["torch"] = {"error": f"{type(e).__name__}: {e}"}
  print("ENV " + json.dumps(out), flush=True)


def child_throughput(args):
  """bench/throughput.py's bench_one for each row of the spec: one `ROW {json}` line
  per row, as soon as it is timed (a time limit keeps the rows before it)."""
  spec = json.loads(args.spec)
  sys.path.insert(0, HERE)
  from textclf_jax.runtime import bootstrap
  # The row's step is compiled twice (XLA's cost analysis, then the call): the cache
  # makes the second a load. compile_s is the first compilation, from an empty cache.
  bootstrap.start()
  import jax
  import throughput
  for row in spec["rows"]:
    model, shape, batch, dtype = row
    length = spec["shapes"][shape]
    try:
      r = throughput.bench_one(model, length, batch, spec["steps"][shape], spec["vocab"],
                               "non-static", spec["embed_dim"], dtype)
      r["shape"] = shape
      r["device_kind"] = jax.devices()[0].device_kind
    except Exception as e:  # noqa: BLE001  (one row's failure is that row's figure)
      r = {"model": model, "shape": shape, "length": length, "batch": batch, "dtype": dtype,
           "error": f"{type(e).__name__}: {str(e)[:400]}"}
    print("ROW " + json.dumps(r), flush=True)


def child_torch(args):
  """bench/torch_reference.py's bench_torch for each row, on the GPU when there is one."""
  spec = json.loads(args.spec)
  sys.path.insert(0, HERE)
  import torch
  from torch_reference import bench_torch
  device = "cuda" if torch.cuda.is_available() else "cpu"
  # As XLA's DEFAULT precision: float32 matrix products may run as TF32.
  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  if device == "cpu":
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
  for row in spec["rows"]:
    model, shape, batch, dtype = row
    length = spec["shapes"][shape]
    try:
      r = bench_torch(model, length, batch, spec["steps"][shape], spec["vocab"], "non-static",
                      spec["embed_dim"], device=device, compute_dtype=dtype)
      r.update(model=model, shape=shape, length=length, batch=batch)
    except Exception as e:  # noqa: BLE001
      r = {"model": model, "shape": shape, "length": length, "batch": batch, "dtype": dtype,
           "error": f"{type(e).__name__}: {str(e)[:400]}"}
    print("ROW " + json.dumps(r), flush=True)


def child_tta(args):
  """One training run that stops at a target accuracy on `--split`; one `TTA {json}`
  line. Seconds are counted from `--spawned` (the parent's clock just before it
  started this process): interpreter start, imports, data, compilation, training."""
  spawned = args.spawned  # accelerator_check.main: else its own start
  from textclf_jax.runtime import bootstrap
  cache = bootstrap.start()
  import jax
  import numpy as np

  from textclf_jax import config as config_lib
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.training.steps import init_metrics
  from textclf_jax.training import build
  from textclf_jax.training.evaluate import predict_probs

  config = config_lib.apply_overrides(config_lib.load_preset(args.preset),
                                      [f"dataset={args.dataset}", f"data_dir={args.data_dir}",
                                       "wandb=disabled", "progress_bar=False",
                                       *json.loads(args.overrides)])
  prepared = prepare(config, fold=0)
  data_s = time.time() - spawned
  print("PROGRESS " + json.dumps({"data_s": data_s}), flush=True)
  train_data, scored = prepared.splits["train"], prepared.splits[args.split]
  mesh = build.make_mesh(config)
  steps_per_epoch = -(-len(train_data) // config.batch_size)
  step_fns, state = build.make_steps(config, prepared.encoder.vocab_size,
                                     len(prepared.label_names),
                                     prepared.multi_label, mesh,
                                     steps_per_epoch * args.max_epochs, vectors=prepared.vectors)
  batcher = build.make_batcher(config, mesh)
  eval_config = config.copy_and_resolve_references()
  with eval_config.unlocked():
    eval_config.batch_size = args.eval_batch_size or config.batch_size
  scorer = build.make_batcher(eval_config, mesh)
  metrics, step, history, first_step_s = init_metrics(), 0, [], None
  best = (0.0, 0, 0.0)  # accuracy, step, seconds
  result = None
  for epoch in range(args.max_epochs):
    for index in batcher.train_plan(train_data, config.seed, epoch):
      state, metrics = step_fns.train_step(state, build.device_batch(batcher, train_data, index,
                                                                     mesh), metrics)
      step += 1
      if first_step_s is None:
        jax.block_until_ready(metrics)
        first_step_s = time.time() - spawned
      if step % args.eval_every == 0:
        probs = predict_probs(step_fns, state, scored, scorer)
        accuracy = float(np.mean(probs.argmax(-1) == scored.labels))
        seconds = time.time() - spawned
        history.append((step, round(seconds, 2), round(accuracy, 4)))
        print("PROGRESS " + json.dumps({"history": history[-1:],
                                        "first_step_s": first_step_s}), flush=True)
        if accuracy > best[0]:
          best = (accuracy, step, seconds)
        if accuracy >= args.target:
          result = {"reached": True, "seconds": seconds, "steps": step, "accuracy": accuracy}
          break
    if result:
      break
  if result is None:
    result = {"reached": False, "seconds": time.time() - spawned, "steps": step,
              "accuracy": history[-1][2] if history else 0.0}
  result.update(dataset=args.dataset_name or args.dataset, split=args.split,
                target=args.target, preset=args.preset, data_s=data_s,
                first_step_s=first_step_s, best_accuracy=best[0], best_step=best[1],
                best_seconds=best[2], history=history, train_examples=len(train_data),
                scored_examples=len(scored), compilation_cache=bool(cache),
                device=str(jax.devices()[0]))
  print("TTA " + json.dumps(result), flush=True)


def child_encoder(args):
  """bench/encoder_speed.py's fine-tuning step (BERT encoder, mean pooling, linear head,
  cross entropy, AdamW on every parameter, dropout on) on random inputs, for each compute
  dtype of the spec (float32 params either way): one `ENCODER {json}` line per dtype."""
  spec = json.loads(args.spec)
  sys.path.insert(0, HERE)
  from textclf_jax.runtime import bootstrap
  bootstrap.start(cache=False)  # compile_s is a compilation
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  import encoder_speed
  from textclf_jax.models.encoders.bert import Encoder, EncoderConfig
  cfg = EncoderConfig(**spec["config"])
  b, t, steps = spec["batch"], spec["length"], spec["steps"]
  rng = np.random.default_rng(0)
  batches = []
  for _ in range(2):  # two distinct batches; lengths from t/2 to t, padded to t
    lengths = rng.integers(max(1, t // 2), t + 1, b)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32)
    ids = rng.integers(1, cfg.vocab_size, (b, t)).astype(np.int32) * mask
    batches.append(jax.device_put((ids, mask, rng.integers(0, 2, b).astype(np.int32))))
  tokens = int(sum(int(x[1].sum()) for x in batches) * steps / 2)
  for dtype in spec["dtypes"]:
    row = {"dtype": dtype, "batch": b, "length": t, "steps": steps,
           "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size}
    try:
      model = Encoder(cfg, jnp.dtype(dtype), rngs=nnx.Rngs(0))
      step, params, opt_state = encoder_speed.jax_train_step(model)
      key = jax.random.key(0)
      start = time.perf_counter()
      compiled = step.lower(params, opt_state, key, *batches[0]).compile()
      row["compile_s"] = time.perf_counter() - start
      params, opt_state, loss = compiled(params, opt_state, key, *batches[1])  # warm-up
      jax.block_until_ready(loss)
      start = time.perf_counter()
      for i in range(steps):
        params, opt_state, loss = compiled(params, opt_state, jax.random.fold_in(key, i),
                                           *batches[i % 2])
      jax.block_until_ready(loss)
      seconds = time.perf_counter() - start
      row.update(examples_per_s=steps * b / seconds, tokens_per_s=tokens / seconds,
                 step_ms=1e3 * seconds / steps, loss=float(loss),
                 device_kind=jax.devices()[0].device_kind)
    except Exception as e:  # noqa: BLE001  (one dtype's failure is that row's figure)
      row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
    print("ENCODER " + json.dumps(row), flush=True)

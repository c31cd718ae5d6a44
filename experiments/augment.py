"""A transfer set for distillation: unlabelled variants of a dataset's training texts
(Tang et al. 2019, section 3.2), written one text a line for --config.distill_unlabelled.

    python -m experiments.augment --dataset sst2 --copies 4 --out runs/sst2_transfer.txt

Each variant of a training text is made word by word (whitespace words): with
probability p_mask a word becomes MASK (a token no vocabulary holds: the student reads
it as its unknown word, as Tang et al.'s [MASK]), and then, with probability p_ngram, the
text is cut to a random n-gram of 1-5 words. Tang et al.'s third rule (swapping words of
the same part of speech) needs a tagger and is left out. Only the training split is read;
dev and test texts never enter the file, and no label is written. Seeded: the same
arguments write the same file.
"""

from __future__ import annotations

import argparse
import os
import random

MASK = "xxmask"


def variant(words: list, rng: random.Random, p_mask: float, p_ngram: float) -> list:
  out = [MASK if rng.random() < p_mask else w for w in words]
  if len(out) > 1 and rng.random() < p_ngram:
    n = rng.randint(1, min(5, len(out)))
    start = rng.randrange(len(out) - n + 1)
    out = out[start: start + n]
  return out


def augment(texts: list, copies: int, seed: int = 0, p_mask: float = 0.1,
            p_ngram: float = 0.25) -> list:
  """`copies` variants of every text (duplicates of a text and of each other dropped)."""
  rng = random.Random(seed)
  seen, out = set(texts), []
  for text in texts:
    words = text.split()
    for _ in range(copies):
      new = " ".join(variant(words, rng, p_mask, p_ngram))
      if new and new not in seen:
        seen.add(new)
        out.append(new)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", required=True, help="a dataset name or directory")
  parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "shared", "datasets"))
  parser.add_argument("--copies", type=int, default=4, help="variants per training text")
  parser.add_argument("--p_mask", type=float, default=0.1)
  parser.add_argument("--p_ngram", type=float, default=0.25)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--fold", type=int, default=-1, help="CV datasets: the fold held out")
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  from textclf_jax import config as config_lib
  from textclf_jax.data.sources import load_source
  from textclf_jax.data.splits import make_splits
  config = config_lib.apply_overrides(config_lib.load_preset("cnn"), [
      f"dataset={args.dataset}", f"data_dir={os.path.normpath(args.data_dir)}"])
  train = make_splits(load_source(config), config, args.fold)["train"].texts
  texts = augment(list(train), args.copies, args.seed, args.p_mask, args.p_ngram)
  with open(args.out, "w", encoding="utf-8") as f:
    for text in texts:
      f.write(text.replace("\n", " ") + "\n")
  print(f"wrote {len(texts)} texts ({args.copies} variants of {len(train)} training texts, "
        f"duplicates dropped) to {args.out}")


if __name__ == "__main__":
  main()

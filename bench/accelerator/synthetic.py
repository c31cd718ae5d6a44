"""The dry run's data: a small two-class task and word vectors written into the check's
work folder, so that the dry run needs nothing from ../shared."""

from __future__ import annotations

import gzip
import json
import os
import random


def dataset(work: str, name: str, dev: bool) -> str:
  """A small two-class task written here (the dry run needs no ../shared)."""
  folder = os.path.join(work, name)
  if os.path.isdir(folder):
    return folder
  os.makedirs(folder)
  words = {"pos": "good great fine superb lovely".split(),
           "neg": "bad awful poor boring dull".split()}
  filler = "the a of and to in is it movie film this that".split()

  def rows(n, seed):
    rng = random.Random(seed)
    for i in range(n):
      label = ("pos", "neg")[i % 2]
      text = [rng.choice(filler) for _ in range(rng.randint(3, 10))]
      for _ in range(rng.randint(1, 3)):
        text.insert(rng.randrange(len(text) + 1), rng.choice(words[label]))
      yield {"text": " ".join(text), "label": label}

  splits = {"train": 400, "test": 100, **({"dev": 80} if dev else {})}
  for split, n in splits.items():
    with gzip.open(os.path.join(folder, f"{split}.jsonl.gz"), "wt", encoding="utf-8") as f:
      for row in rows(n, seed={"train": 1, "dev": 2, "test": 3}[split]):
        f.write(json.dumps(row) + "\n")
  return folder

def vectors(work: str) -> str:
  """8-dimensional vectors for a few of `dataset`'s words."""
  path = os.path.join(work, "vectors8.txt")
  if not os.path.exists(path):
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
      for word in "good great bad awful the movie film".split():
        f.write(word + " " + " ".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(8)) + "\n")
  return path

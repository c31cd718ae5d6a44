"""Sources outside the repository: the TFDS catalogue (mocked offline) and the
benchmark copies in ../shared/datasets (skipped when absent)."""

import os

import pytest

from conftest import SHARED_DATASETS, tiny_config
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.sources import load_source

needs_shared = pytest.mark.skipif(
    not os.path.isdir(SHARED_DATASETS),
    reason=f"benchmark copies not found at {SHARED_DATASETS} (only CI and dev machines have them)")


def test_tfds_catalogue_dataset_through_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=24):
    raw = load_source(tiny_config(dataset="tfds:imdb_reviews"))
  assert raw.name == "tfds:imdb_reviews" and not raw.multi_label
  assert {"train", "test"} <= set(raw.splits)
  assert len(raw.splits["train"]) == 24
  assert all(isinstance(t, str) for t in raw.splits["train"].texts)
  assert set(raw.splits["train"].labels) <= {"neg", "pos"}


def test_tfds_ag_news_finds_its_text_feature_and_trains(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from textclf_jax.training import loop as train
  config = tiny_config(dataset="tfds:ag_news_subset", num_epochs=1)
  with tfds.testing.mock_data(num_examples=40):
    raw = load_source(config)
    results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert len(raw.splits["train"]) == 40 and raw.splits["train"].texts[0]
  assert results["test"]["num_examples"] == 40


@needs_shared
@pytest.mark.parametrize("name, train, dev, test, multi", [
    ("sst2", 6920, 872, 1821, False), ("trec", 4906, 546, 500, False),
    ("reuters21578", 6993, 777, 3019, True)])
def test_shared_benchmarks_load_with_documented_counts(name, train, dev, test, multi):
  config = tiny_config(dataset=name, data_dir=SHARED_DATASETS)
  raw = load_source(config)
  splits = splits_lib.make_splits(raw, config)
  assert raw.multi_label == multi
  assert (len(splits["train"]), len(splits["dev"]), len(splits["test"])) == (train, dev, test)


@needs_shared
def test_shared_mr_is_ten_fold_cross_validation():
  config = tiny_config(dataset="mr", data_dir=SHARED_DATASETS)
  raw = load_source(config)
  assert splits_lib.uses_cross_validation(raw)
  assert splits_lib.num_folds_of(raw, 10) == 10
  assert len(raw.splits["all"]) == 10662

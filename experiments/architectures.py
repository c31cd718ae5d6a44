"""Architectures: CNN, LSTM, BiLSTM and CNN→LSTM on SST-2, TREC and IMDB.

    python -m experiments.architectures                # the full study (many CPU hours)
    python -m experiments.architectures --datasets trec --variants cnn,bilstm --units 2
    python -m experiments.architectures --quick        # TREC, seed 0, cnn and lstm
    python -m experiments.architectures --report       # tabulate the cells finished so far

Measures, per architecture and dataset (mean ± std over 5 seeds): test accuracy,
trainable parameters, training examples per second and wall time of the run (data
preparation, compilation, training and evaluation). Each architecture keeps its
preset's recipe (configs/{cnn,lstm,hybrid}.py: Adam, dropout 0.5; LSTM 150 units,
CNN→LSTM 128 maps of width 3 into 128 units); all use non-static GloVe 6B 100d,
max_len 64 (IMDB 400) and early stopping on dev. Timings are only comparable within
one table: same machine, same load. The CNN is the reference row.
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment

VARIANTS = {"cnn": ["preset=cnn"],
            "lstm": ["preset=lstm", "bidirectional=False"],
            "bilstm": ["preset=lstm", "bidirectional=True"],
            "cnn-lstm": ["preset=hybrid"]}


def experiment(data_dir: str, vectors: str, seeds=(0, 1, 2, 3, 4)) -> Experiment:
  # A variant's `preset=` picks the preset; every override then applies to it.
  return Experiment(
      name="architectures", preset="cnn",
      overrides=(f"data_dir={data_dir}", "embedding=non-static", "embed_dim=100",
                 f"vectors={vectors}", "early_stopping_patience=3"),
      variants=VARIANTS,
      datasets={"sst2": ["dataset=sst2", "max_len=64"], "trec": ["dataset=trec", "max_len=64"],
                "imdb": ["dataset=imdb", "max_len=400"]},
      seeds=seeds, metrics=("accuracy", "num_params", "examples_per_second", "wall_seconds"),
      reference="cnn", baselines={"tfidf+lr": []})


def studies(args) -> list:
  exp = experiment(args.data_dir, args.vectors, args.seeds)
  return [ablation.Study(exp, quick_datasets=("trec",), quick_variants=("cnn", "lstm"))]


def main(argv=None):
  return ablation.main(__doc__, "architectures", studies, argv)


if __name__ == "__main__":
  main()

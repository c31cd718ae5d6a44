"""Loss functions, on natural and artificially imbalanced data, single- and multi-label.

    python -m experiments.losses                       # both tables (many CPU hours)
    python -m experiments.losses --datasets sst2,sst2-pos1 --variants ce,focal2 --units 2
    python -m experiments.losses --quick               # TREC with HUM at 10%, and Reuters
    python -m experiments.losses --report              # tabulate the cells finished so far

ROOT/single/table.md — test accuracy and macro-F1 (mean ± std over MR's 10 folds or
5 seeds) of cross-entropy (the reference row), label-smoothed CE (0.1), focal loss
(gamma 0.5, 1, 2, 5) and class-weighted CE (balanced: N / (C n_c)) on MR, SST-2, TREC
and on imbalanced versions whose TRAINING split keeps 10% or 1% of one class
(`imbalance_label`/`imbalance_fraction`: MR and SST-2 positive, TREC HUM; dev and
test untouched), e.g. `sst2-pos1`.
ROOT/multilabel/table.md — test micro- and macro-F1 on Reuters-21578 (90 labels) of
sigmoid BCE, sigmoid focal (gamma 2) and positive-weighted BCE (class_weights=
balanced_sqrt: sqrt(negatives/positives) per label, the plain ratio reaching ~7000 for
the rarest labels); each trained model is scored with one global decision threshold
and with one threshold per label, both tuned on dev.
Model: Kim's CNN recipe (configs/kim.py) with non-static GloVe 6B 100d; Reuters: the
cnn preset with Adam 1e-3, 100 maps, max_len 128, up to 15 epochs.
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment

# dataset -> the class whose training examples are subsampled
IMBALANCE = {"mr": ("positive", "pos"), "sst2": ("positive", "pos"), "trec": ("HUM", "hum")}
FRACTIONS = {"10": 0.1, "1": 0.01}


def single_label(data_dir: str, vectors: str, seeds) -> Experiment:
  datasets = {name: [f"dataset={name}"] for name in IMBALANCE}
  for name, (label, short) in IMBALANCE.items():
    for pct, fraction in FRACTIONS.items():
      datasets[f"{name}-{short}{pct}"] = [f"dataset={name}", f"imbalance_label={label}",
                                          f"imbalance_fraction={fraction}"]
  variants = {"ce": ["loss=softmax_ce"], "ce+ls0.1": ["loss=softmax_ce", "label_smoothing=0.1"]}
  variants.update({f"focal{g:g}": ["loss=focal", f"focal_gamma={g}"] for g in (0.5, 1, 2, 5)})
  variants["ce+balanced"] = ["loss=softmax_ce", "class_weights=balanced"]
  return Experiment(
      name="losses", preset="kim",
      overrides=(f"data_dir={data_dir}", "embedding=non-static", "embed_dim=100",
                 f"vectors={vectors}"),
      variants=variants, datasets=datasets, seeds=seeds, metrics=("accuracy", "macro_f1"),
      reference="ce", baselines={"tfidf+lr": [], "tfidf+lr balanced": ["class_weights=balanced"]},
      published_note="Datasets NAME-CLASS10 / NAME-CLASS1: training split with 10% / 1% of "
                     "CLASS kept (seeded, the same examples for every variant and seed).")


def multi_label(data_dir: str, vectors: str, seeds) -> Experiment:
  variants = {"bce": ["loss=sigmoid_bce"], "focal2": ["loss=focal", "focal_gamma=2.0"],
              "bce+posw": ["loss=sigmoid_bce", "class_weights=balanced_sqrt"]}
  return Experiment(
      name="losses_multilabel", preset="cnn",
      # A lighter CNN than the core table's (200 maps, max_len 256: ~12 CPU-minutes a
      # run): 100 maps, the first 128 tokens (the median article has 87 words).
      overrides=(f"data_dir={data_dir}", "max_len=128", "learning_rate=1e-3", "num_epochs=15",
                 "num_filters=100", "embedding=non-static", "embed_dim=100",
                 f"vectors={vectors}"),
      variants=variants, datasets={"reuters21578": ["dataset=reuters21578"]}, seeds=seeds,
      metrics=tuple(f"{mode}:{m}" for mode in ("global", "per_label")
                    for m in ("micro_f1", "macro_f1")),
      reference="bce", baselines={"tfidf+lr": []},
      published_note="global thr.: one decision threshold; per-label thr.: one per label "
                     "(labels without dev positives keep the global one); both tuned on dev "
                     "for the same trained model (results.json's by_threshold_mode).")


def studies(args) -> list:
  return [
      ablation.Study(single_label(args.data_dir, args.vectors, args.seeds), "single",
                     quick_datasets=("trec-hum10",), quick_variants=("ce", "focal2")),
      ablation.Study(multi_label(args.data_dir, args.vectors, args.seeds), "multilabel",
                     quick_datasets=("reuters21578",), quick_variants=("bce",)),
  ]


def main(argv=None):
  return ablation.main(__doc__, "losses", studies, argv)


if __name__ == "__main__":
  main()

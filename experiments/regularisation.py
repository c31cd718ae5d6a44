"""Regularisation and optimisation of Kim's CNN on MR and SST-2: dropout, weight decay
(decoupled and L2), max-norm, early stopping, learning-rate schedules.

    python -m experiments.regularisation               # the full study (many CPU hours)
    python -m experiments.regularisation --datasets sst2 --variants default,dropout0.0 --units 2
    python -m experiments.regularisation --quick       # SST-2, seed 0, default and dropout0.0
    python -m experiments.regularisation --report      # tabulate the cells finished so far

Every variant changes one thing of the reference row `default` — the cnn preset (widths
3/4/5 x 100, Adam 1e-3 constant, dropout 0.5, max-norm 3 on the output layer, no
weight decay, early stopping with patience 5 on dev accuracy, up to 15 epochs) with
non-static GloVe 6B 100d, max_len 64 — and the table gives test accuracy and macro-F1,
mean ± std over MR's 10 folds or 5 SST-2 seeds, Δ from `default`:
- dropout0.0 … dropout0.7 (plot.png: accuracy against the dropout rate; 0.5 is `default`);
- wd1e-4, wd1e-3: decoupled weight decay (AdamW-style); l2-1e-4, l2-1e-3: an L2 penalty
  added to the gradient (weight_decay_mode=l2);
- maxnorm-off, maxnorm1: no max-norm / s = 1 (default: 3);
- no-early-stop: all 15 epochs (patience 0) and the final state is tested
  (test_checkpoint=last): no model selection on dev at all;
- warmup-cosine (10% warm-up), plateau (LR halves after 2 evaluations without dev gain).
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment, Plot

DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7)  # 0.5: default


def experiment(data_dir: str, vectors: str, seeds=(0, 1, 2, 3, 4)) -> Experiment:
  variants = {"default": []}
  variants.update({f"dropout{p:.1f}": [f"dropout={p}"] for p in DROPOUTS})
  variants.update({
      "wd1e-4": ["weight_decay=1e-4", "weight_decay_mode=decoupled"],
      "wd1e-3": ["weight_decay=1e-3", "weight_decay_mode=decoupled"],
      "l2-1e-4": ["weight_decay=1e-4", "weight_decay_mode=l2"],
      "l2-1e-3": ["weight_decay=1e-3", "weight_decay_mode=l2"],
      "maxnorm-off": ["max_norm=0.0"],
      "maxnorm1": ["max_norm=1.0"],
      "no-early-stop": ["early_stopping_patience=0", "test_checkpoint=last"],
      # warmup_steps: ~10% of 15 epochs of SST-2 (≈ 140 steps of 50 per epoch).
      "warmup-cosine": ["schedule=warmup_cosine", "warmup_steps=200"],
      "plateau": ["schedule=plateau", "plateau_factor=0.5", "plateau_patience=2"],
  })
  return Experiment(
      name="regularisation", preset="cnn",
      overrides=(f"data_dir={data_dir}", "max_len=64", "learning_rate=1e-3", "num_epochs=15",
                 "early_stopping_patience=5", "embedding=non-static", "embed_dim=100",
                 f"vectors={vectors}"),
      variants=variants, datasets={name: [f"dataset={name}"] for name in ("mr", "sst2")},
      seeds=seeds, metrics=("accuracy", "macro_f1"), reference="default",
      baselines={"tfidf+lr": []},
      plots=(Plot("dropout", {**{f"dropout{p:.1f}": p for p in DROPOUTS}, "default": 0.5},
                  "dropout rate"),))


def studies(args) -> list:
  exp = experiment(args.data_dir, args.vectors, args.seeds)
  return [ablation.Study(exp, quick_datasets=("sst2",),
                         quick_variants=("default", "dropout0.0"))]


def main(argv=None):
  return ablation.main(__doc__, "regularisation", studies, argv)


if __name__ == "__main__":
  main()

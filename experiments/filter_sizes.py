"""Zhang & Wallace (2015), "A Sensitivity Analysis of CNNs for Sentence Classification":
region (filter) sizes and the number of feature maps of Kim's CNN, on MR, SST-2, TREC.

    python -m experiments.filter_sizes                 # the full study (many CPU hours)
    python -m experiments.filter_sizes --datasets trec --variants w1,w3,w7 --units 2
    python -m experiments.filter_sizes --quick         # TREC, seed 0, w5 and w3-4-5, under a minute
    python -m experiments.filter_sizes --report        # tabulate the cells finished so far

Measures test accuracy (mean ± std over MR's 10 folds, or 5 seeds) of:
- w1 … w10: one region size, 100 feature maps (plot.png: accuracy against region size,
  one line per dataset, the TF-IDF baseline dashed);
- w3-4-5 (Kim's, the reference row), w2-3-4, w5-6-7, w7-7-7, w7-8-9: three sizes x 100;
- maps10 … maps600: widths 3/4/5 with 10 … 600 maps each (plot_feature_maps.png, log x).
Everything else is Kim's recipe (configs/kim.py) with non-static GloVe 6B 100d, as
Zhang & Wallace's non-static word2vec baseline.
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment, Plot

SIZES = range(1, 11)
COMBOS = ((3, 4, 5), (2, 3, 4), (5, 6, 7), (7, 7, 7), (7, 8, 9))
MAPS = (10, 50, 200, 400, 600)  # and 100: w3-4-5


def _widths(widths) -> str:
  return "w" + "-".join(map(str, widths))


def experiment(data_dir: str, vectors: str, seeds=(0, 1, 2, 3, 4)) -> Experiment:
  variants = {f"w{k}": [f"filter_widths=({k},)"] for k in SIZES}
  variants.update({_widths(c): [f"filter_widths={c}"] for c in COMBOS})
  variants.update({f"maps{m}": ["filter_widths=(3, 4, 5)", f"num_filters={m}"] for m in MAPS})
  return Experiment(
      name="filter_sizes", preset="kim",
      overrides=(f"data_dir={data_dir}", "num_filters=100", "embedding=non-static",
                 "embed_dim=100", f"vectors={vectors}"),
      variants=variants,
      datasets={name: [f"dataset={name}"] for name in ("mr", "sst2", "trec")},
      seeds=seeds, reference="w3-4-5", baselines={"tfidf+lr": []},
      plots=(Plot("region_size", {f"w{k}": k for k in SIZES}, "region size (one width, "
                  "100 maps)"),
             Plot("feature_maps", {**{f"maps{m}": m for m in MAPS}, "w3-4-5": 100},
                  "feature maps per width (3, 4, 5)", log_x=True)),
      published_note="Kim's CNN (Adadelta, dropout 0.5, max-norm 3, early stopping on dev) "
                     "with non-static GloVe 6B 100d; Zhang & Wallace used word2vec 300d.")


def studies(args) -> list:
  exp = experiment(args.data_dir, args.vectors, args.seeds)
  return [ablation.Study(exp, quick_datasets=("trec",), quick_variants=("w5", "w3-4-5"))]


def main(argv=None):
  return ablation.main(__doc__, "filter_sizes", studies, argv)


if __name__ == "__main__":
  main()

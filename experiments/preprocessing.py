"""Preprocessing: lower-casing, stop-word removal (plain / keeping negations) and
stemming, for Kim's CNN and for the TF-IDF baseline, on MR, SST-2 and TREC.

    python -m experiments.preprocessing                # the full study (many CPU hours)
    python -m experiments.preprocessing --datasets trec --variants default,stem --units 2
    python -m experiments.preprocessing --quick        # TREC, seed 0, default and stem
    python -m experiments.preprocessing --report       # tabulate the cells finished so far

Test accuracy and macro-F1 (mean ± std over MR's 10 folds or 5 seeds), Δ from
`default` (lower-cased, nothing removed, no stemming) of:
- cased: no lower-casing;
- stop: stop words removed, negations too (not, no, n't, never, …);
- stop-keepneg: stop words removed, negations kept;
- stem: Snowball (Porter2) English stemmer;
- stop-keepneg+stem: both.
Each setting also gets its own baseline row `tfidf+lr VARIANT` (same tokens).
Embeddings are random (CNN-rand, Kim's recipe otherwise): pretrained vectors are
keyed by unstemmed lower-case words, which would confound the comparison.
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment

VARIANTS = {
    "default": [],
    "cased": ["lowercase=False"],
    "stop": ["remove_stopwords=True", "keep_negations=False"],
    "stop-keepneg": ["remove_stopwords=True", "keep_negations=True"],
    "stem": ["stem=True"],
    "stop-keepneg+stem": ["remove_stopwords=True", "keep_negations=True", "stem=True"],
}


def experiment(data_dir: str, vectors: str = "", seeds=(0, 1, 2, 3, 4)) -> Experiment:
  del vectors  # random embeddings: see the module docstring
  return Experiment(
      name="preprocessing", preset="kim",
      overrides=(f"data_dir={data_dir}", "embedding=rand", "embed_dim=100"),
      variants=VARIANTS,
      datasets={name: [f"dataset={name}"] for name in ("mr", "sst2", "trec")},
      seeds=seeds, metrics=("accuracy", "macro_f1"), reference="default",
      baselines={f"tfidf+lr {name}": over for name, over in VARIANTS.items()})


def studies(args) -> list:
  exp = experiment(args.data_dir, args.vectors, args.seeds)
  return [ablation.Study(exp, quick_datasets=("trec",), quick_variants=("default", "stem"),
                         quick_baselines=("tfidf+lr default", "tfidf+lr stem"))]


def main(argv=None):
  return ablation.main(__doc__, "preprocessing", studies, argv)


if __name__ == "__main__":
  main()

"""Documents: the IMDB presets over 5 seeds, beside the TF-IDF baseline.

    python -m experiments.documents                # IMDB, 5 seeds of each preset
    python -m experiments.documents --vmap         # each preset's seeds as one program
    python -m experiments.documents --variants fasttext_nb,fasttext_nb3
    python -m experiments.documents --report       # tabulate the cells finished so far

The document presets as they are (configs/fasttext_nb.py, fasttext_nb3.py, cnn_doc.py;
docs/documents.md): the two bags of n-grams and the CNN over whole reviews in windows of
100 (non-static GloVe 6B 100d), each with its own recipe, early stopping on IMDB's 10% dev
split. Per preset (mean ± std over the seeds): test accuracy and the run's wall time
(data preparation, compilation, training and evaluation). TF-IDF + logistic regression is
the baseline row. `bilstm_doc` is left out: ~1,600 s a seed on the 2-core CPU.
"""

from __future__ import annotations

from experiments import ablation
from experiments.runner import Experiment


def experiment(data_dir: str, vectors: str, seeds=(0, 1, 2, 3, 4)) -> Experiment:
  glove = ["embedding=non-static", "embed_dim=100", f"vectors={vectors}"]
  return Experiment(
      name="documents", preset="fasttext_nb", overrides=(f"data_dir={data_dir}",),
      variants={"fasttext_nb": ["preset=fasttext_nb"],
                "fasttext_nb3": ["preset=fasttext_nb3"],
                "cnn_doc": ["preset=cnn_doc", *glove]},
      datasets={"imdb": ["dataset=imdb"]},
      seeds=seeds, metrics=("accuracy", "wall_seconds"),
      reference="fasttext_nb3", baselines={"tfidf+lr": []})


def studies(args) -> list:
  exp = experiment(args.data_dir, args.vectors, args.seeds)
  return [ablation.Study(exp, quick_datasets=("imdb",), quick_variants=("fasttext_nb",))]


def main(argv=None):
  return ablation.main(__doc__, "documents", studies, argv)


if __name__ == "__main__":
  main()

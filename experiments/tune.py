"""Hyper-parameter search on dev: `python -m experiments.tune ARGS` is `textclf tune ARGS`.

    python -m experiments.tune --config cnn --config.dataset=sst2 --space cnn --trials 30
    python -m experiments.tune ... --storage postgresql://USER@HOST/DB   # many workers

The study, its trials (each a run directory) and the best config: textclf_jax/tune/search.py;
the search spaces: every model family's Candidates (families.registry.candidates(); the
networks' in textclf_jax/families/spaces.py); how to use it: docs/tuning.md.
"""

import sys

from textclf_jax.cli import main as cli


def main():
  sys.argv = [sys.argv[0], "tune", *sys.argv[1:]]
  cli.main()


if __name__ == "__main__":
  main()

"""Tuned models against the TF-IDF baseline, one dataset per command: a row of the
table in docs/versus_linear.md.

    python -m experiments.versus_linear --dataset trec --models cnn,lstm,hybrid \
        --trials 30 [--seeds 5] [--vectors $GLOVE] [--root runs/versus_linear]
    python -m experiments.versus_linear --dataset trec --models cnn --trials 2 --seeds 2 --quick

The models are the model families' Candidates (families.registry.candidates(); the
networks' are in textclf_jax/families/spaces.py): default --models, every candidate that
comparisons take (cnn, lstm, hybrid, bag, and those of any family registered); the
pretrained `transformer` (preset minilm; `--set encoder_path=DIR` for another model
folder) only when named, and only with the `encoders` extra and its weights. For each:
  1. tune   a `textclf tune` study of its space on the dev split (textclf_jax/tune/;
            CV datasets: fold 0's dev) from its preset (IMDB: its document_preset),
            ROOT/DATASET/MODEL/tune/; the preset's own settings are the first trial
            where the space can express them;
  2. final  the best trial's config (best_config.py) trained through its family on
            `--seeds` seeds, on every fold for CV datasets (folds x seeds), as one
            vmapped program per fold where the family and config allow it
            (textclf_jax/training/group/), else one run at a time:
            ROOT/DATASET/MODEL/trial-NNN/{seed_S, fold_K/seed_S};
  3. the seeds' ensemble: the mean of their calibrated probabilities (serve/ensemble.py's
     `mean_probs`, from the runs' saved predictions), per fold.
Then the TF-IDF baseline (the tfidf family, textclf_jax/families/tfidf/) on the same
split or folds, ROOT/DATASET/tfidf/{seed_0, fold_K}: single-label TF-IDF is
deterministic (newton-cg), so one fit per fold pairs with every seed.

The best entry -- each model's single runs (their mean) or its ensemble -- is chosen by
DEV accuracy alone (`choose`); test scores are read only to be reported. It is compared
with TF-IDF by textclf_jax/scoring/significance.py: a paired t-test (and Wilcoxon) over
matched units (seeds for a fixed split, folds for CV; an ensemble of a fixed split is one
unit, so it gets the bootstrap only) and a paired bootstrap over the test examples of the
pooled predictions. Writes ROOT/DATASET/row.md (the markdown row, its header, each
model's dev-chosen config) and row.json (every number), and prints the row.

Resumable: the studies live in SQLite, finished runs are read and not re-run, a
half-finished group or run resumes; run the same command again. CPU time (this process
and its children) is added up over invocations in ROOT/DATASET/cpu.json.

Modules: versus_linear_plan (models, configs, cells), versus_linear_entries (reading the
runs, choosing, comparing), versus_linear_row (the row, cpu.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys

from experiments.versus_linear_entries import (
    ALL, Entry, choose, compare, ensemble_entry, ensemble_split, model_entries, read_tfidf,
    saved_predictions)
from experiments.versus_linear_plan import (
    DATA_KEYS, DOCUMENTS, METRIC, QUICK_FOLDS, SENTENCES, VECTOR_KEYS, Plan, candidates,
    dataset_name, default_models, experiment, log, network_base, network_cells,
    preset_params, tfidf_cells, train_cells, tune_model, units, unknown_keys)
from experiments.versus_linear_row import (
    HEADER, Ledger, _plain, config_summary, entry_record, header, markdown, markdown_row)

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))
ROW_JSON, ROW_MD, CPU_JSON = "row.json", "row.md", "cpu.json"

# The command, and the names of its modules that callers (and tests) use from here.
__all__ = [
    "ALL", "CPU_JSON", "DATA_KEYS", "DOCUMENTS", "HEADER", "METRIC", "QUICK_FOLDS",
    "ROW_JSON", "ROW_MD", "SENTENCES", "VECTOR_KEYS", "Entry", "Ledger", "Plan",
    "candidates", "choose", "compare", "config_summary", "dataset_name", "default_models",
    "ensemble_entry", "ensemble_split", "entry_record", "experiment", "header", "main",
    "make_plan", "markdown", "markdown_row", "model_entries", "network_base",
    "network_cells", "parser", "preset_params", "read_tfidf", "run", "saved_predictions",
    "tfidf_cells", "train_cells", "tune_model", "units"]


def make_plan(args) -> Plan:
  from textclf_jax import config as config_lib
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source
  known = candidates()
  models = tuple(m for m in args.models.split(",") if m) if args.models else default_models()
  unknown = [m for m in models if m not in known]
  if unknown or not models:
    raise SystemExit(f"--models {args.models!r}: expected some of {', '.join(known)} "
                     "(the model families' candidates)")
  if args.trials < 1 or args.seeds < 1:
    raise SystemExit("--trials and --seeds: expected numbers >= 1")
  data = [f"dataset={args.dataset}"] + ([f"data_dir={os.path.abspath(args.data_dir)}"]
                                        if args.data_dir else [])
  sets = [s for item in args.set for s in item]
  data += [s for s in sets if s.split("=", 1)[0] in DATA_KEYS]
  net = list(sets)
  if args.vectors:
    net = [f"vectors={os.path.abspath(args.vectors)}", "embedding=non-static", *net]
  probe = config_lib.apply_overrides(config_lib.load_preset("tfidf"), data)
  raw = load_source(probe)
  if raw.multi_label:
    raise SystemExit(f"[versus_linear] {args.dataset}: multi-label; this row compares "
                     "single-label accuracy")
  folds = None
  if splits_lib.uses_cross_validation(raw):
    available = list(range(splits_lib.num_folds_of(raw, probe.num_folds)))
    folds = [int(k) for k in args.folds.split(",") if k] if args.folds else available
    if args.quick and not args.folds:
      folds = available[:QUICK_FOLDS]
    bad = [k for k in folds if k not in available]
    if bad:
      raise SystemExit(f"--folds: {args.dataset} has folds 0..{available[-1]}, not {bad}")
    folds = tuple(folds)
  plan = Plan(dataset=args.dataset, name=dataset_name(args.dataset), root=args.root,
              models=models, trials=args.trials, seeds=tuple(range(args.seeds)), folds=folds,
              data_overrides=data, net_overrides=net, quick=args.quick, vmap=not args.solo,
              pruner=args.pruner, sampler_seed=args.sampler_seed)
  unknown = unknown_keys(plan, sets)  # a key goes to the models whose config has it
  if unknown:
    raise SystemExit(f"--set {' '.join(unknown)}: a key that none of the models "
                     f"({', '.join(models)}) has")
  for model in models:  # packages or weights a candidate needs (the transformer's)
    why = known[model].why_unavailable(network_base(plan, model)[1])
    if why:
      raise SystemExit(f"[versus_linear] --models {model}: not available here: {why}")
  return plan


def run(plan: Plan, command: str = "") -> dict:
  """Tunes, trains, reads and compares; writes row.md and row.json; returns the record."""
  from textclf_jax.runtime import bootstrap
  from textclf_jax.run import layout as rundir
  bootstrap.start()  # before the first XLA computation, as experiments/runner.py
  ledger = Ledger(os.path.join(plan.directory, CPU_JSON), command)
  exp = experiment(plan)
  models, entries, pooled = {}, [], {}
  for model in plan.models:
    summary = tune_model(plan, model)
    ledger.save()
    per_fold = []
    for fold, cells in network_cells(plan, model, summary):
      log(f"{plan.name} / {model} trial {summary['best']['number']}: "
          + (f"fold {fold}, " if fold is not None else "") + f"{len(cells)} seed(s)")
      results = train_cells(plan, exp, cells)
      per_fold.append((fold, [(c.workdir(plan.root), r) for c, r in zip(cells, results)]))
      pooled.setdefault(fold, []).extend(per_fold[-1][1])
      ledger.save()
    got = model_entries(plan, model, per_fold)
    entries.extend(got)
    best = summary["best"]
    config = rundir.read_json(os.path.join(plan.tune_dir(model), best["workdir"],
                                           rundir.CONFIG))
    models[model] = {"trial": best["number"], "trial_dev": best["value"],
                     "params": best["params"], "config_file": best["config_file"],
                     "config_summary": config_summary(config, best["params"]),
                     "trials": {"finished": summary["finished"], "states": summary["states"]},
                     "runs": [w for _, runs in per_fold for w, _ in runs],
                     "entries": got}
  cells = tfidf_cells(plan)
  log(f"{plan.name} / TF-IDF: {len(cells)} run(s)")
  tfidf = read_tfidf(plan, cells, train_cells(plan, exp, cells))
  for m in models.values():
    got = m.pop("entries")
    m["single"] = entry_record(got[0], tfidf)
    m["ensemble"] = entry_record(got[1], tfidf) if len(got) > 1 else None
  everything = None
  if len(plan.models) > 1:  # every model's seeds as one ensemble, a candidate like the others
    all_entry = ensemble_entry(ALL, list(pooled.items()))
    entries.append(all_entry)
    everything = entry_record(all_entry, tfidf) | {"members": list(plan.models)}
  best = choose(entries)
  chosen = everything if best.model == ALL else \
      models[best.model]["single" if best.kind == "single" else "ensemble"]
  cpu = ledger.save()
  record = {
      "dataset": plan.name, "command": command,
      "date": datetime.date.today().isoformat(), "metric": METRIC,
      "seeds": list(plan.seeds), "folds": None if plan.folds is None else list(plan.folds),
      "quick": plan.quick, "models": models, "all_ensemble": everything,
      "tfidf": {k: v for k, v in tfidf.items() if k != "per_fold"}
      | {"per_unit": [{"fold": f, "dev": d, "test": t} for f, (d, t, _) in
                      tfidf["per_fold"].items()]},
      "best": {"entry": best.name, "model": best.model, "kind": best.kind, "dev": best.dev,
               "test": best.test, "vs_tfidf": chosen["vs_tfidf"],
               "chosen_by": "dev accuracy (mean over units) only"},
      "cpu": cpu}
  record = _plain(json.loads(json.dumps(record)))  # JSON values; no test: NaN -> null
  rundir.write_json(os.path.join(plan.directory, ROW_JSON), record)
  text = markdown(record)
  with open(os.path.join(plan.directory, ROW_MD), "w", encoding="utf-8") as f:
    f.write(text)
  print(text, flush=True)
  return record


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", required=True, help="mr, subj, sst2, trec, imdb, or a directory")
  p.add_argument("--models", default="",
                 help="comma-separated candidates of the model families (default: every "
                 "compared one: cnn,lstm,hybrid,bag and any registered family's; bag: the "
                 "fasttext_nb preset, IMDB: fasttext_nb3)")
  p.add_argument("--trials", type=int, default=20,
                 help="finished trials per model's study (more: the study goes on)")
  p.add_argument("--seeds", type=int, default=5,
                 help="seeds 0..N-1 of the best config (per fold on CV datasets)")
  p.add_argument("--folds", default="", help="CV datasets: a subset of folds, e.g. 0,1 "
                 "(default: all; --quick: the first two)")
  p.add_argument("--root", default="runs/versus_linear")
  p.add_argument("--vectors", default="", help="pretrained vectors (GloVe): non-static by "
                 "default, the spaces also try rand/static/multichannel; none: CNN-rand")
  p.add_argument("--data_dir", default=os.path.join(SHARED, "datasets"))
  p.add_argument("--set", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                 help="config overrides of every model whose config has the key (data "
                 "keys also of TF-IDF)")
  p.add_argument("--pruner", default="median", choices=("median", "halving", "none"))
  p.add_argument("--sampler_seed", type=int, default=0)
  p.add_argument("--solo", action="store_true", help="train seeds one by one, not vmapped")
  p.add_argument("--quick", action="store_true",
                 help="a smoke run: 2 epochs on 400 training examples (experiments.spec.QUICK)")
  return p


def main(argv=None) -> dict:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parser().parse_args(argv)
  command = "python -m experiments.versus_linear " + " ".join(shlex.quote(a) for a in argv)
  return run(make_plan(args), command)


if __name__ == "__main__":
  main()

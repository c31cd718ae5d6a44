"""How well a run's probabilities are calibrated, and temperature scaling fitted on dev.

Definitions (probs [N, C], labels [N] ints, or [N, C] 0/1 for multi-label):

  ECE    15 equal-width bins [k/15, (k+1)/15) (the last one closed) of a confidence;
         sum over bins of (bin size / total) * |mean outcome - mean confidence|.
         Single-label: the confidence is the top probability, the outcome whether the
         top label is right. Multi-label: every label probability of every example is
         a confidence and its outcome is whether that label is present (N * C of them).
  Brier  single-label: mean over examples of sum_c (p_c - [y = c])^2  (0 to 2);
         multi-label: mean over examples and labels of (p_c - y_c)^2  (0 to 1).
  NLL    single-label: mean of -log p_y; multi-label: mean over examples and labels of
         the binary cross-entropy. Probabilities are clipped to [1e-12, 1 - 1e-12].

Temperature scaling (Guo et al., 2017): calibrated probabilities are softmax(z / T) or,
multi-label, sigmoid(z_c / T_c), with z the logits recovered from the saved
probabilities: log p (softmax(log p / T) = softmax(logits / T)), or logit(p) with p
clipped to [1e-7, 1 - 1e-7] (float32 resolution near 1). T (or each T_c) minimises dev
NLL over log T in [log 0.05, log 20], by L-BFGS-B starting from T = 1; a T that does not
lower dev NLL, as `apply_temperature` computes it, is set back to 1, so dev NLL never
rises. A multi-label label that is constant on dev keeps T_c = 1. T = 1 returns the
probabilities unchanged, bit for bit.
"""

from __future__ import annotations

import os

import numpy as np

BINS = 15
NLL_EPS = 1e-12  # probabilities are clipped to [NLL_EPS, 1 - NLL_EPS] for NLL
LOGIT_EPS = 1e-7  # sigmoid probabilities are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] for logits
LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))
METRICS = ("ece", "brier", "nll")


def _onehot(labels, num_classes: int) -> np.ndarray:
  out = np.zeros((len(labels), num_classes), np.float64)
  out[np.arange(len(labels)), np.asarray(labels, np.int64)] = 1.0
  return out


def confidences(probs, labels, multi_label: bool):
  """(confidence, outcome) pairs of the ECE and the reliability diagram, both [M] float64."""
  probs = np.asarray(probs, np.float64)
  if multi_label:
    return probs.ravel(), (np.asarray(labels) > 0.5).astype(np.float64).ravel()
  return probs.max(axis=1), (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)


def reliability_bins(probs, labels, multi_label: bool, bins: int = BINS):
  """Per bin: (mean confidence, mean outcome, count), each [bins]; empty bins are NaN."""
  conf, outcome = confidences(probs, labels, multi_label)
  index = np.minimum((conf * bins).astype(np.int64), bins - 1)
  count = np.bincount(index, minlength=bins).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean_conf = np.bincount(index, conf, minlength=bins) / count
    mean_outcome = np.bincount(index, outcome, minlength=bins) / count
  return mean_conf, mean_outcome, count


def ece(probs, labels, multi_label: bool = False, bins: int = BINS) -> float:
  """Expected calibration error (see the module docstring)."""
  mean_conf, mean_outcome, count = reliability_bins(probs, labels, multi_label, bins)
  used = count > 0
  return float(np.sum(count[used] / count.sum() * np.abs(mean_outcome[used] - mean_conf[used])))


def brier(probs, labels, multi_label: bool = False) -> float:
  probs = np.asarray(probs, np.float64)
  truth = (np.asarray(labels) > 0.5).astype(np.float64) if multi_label \
      else _onehot(labels, probs.shape[1])
  squared = (probs - truth) ** 2
  return float(squared.mean() if multi_label else squared.sum(axis=1).mean())


def _label_nll(probs, labels, multi_label: bool) -> np.ndarray:
  """Single-label: -log p_y per example [N]; multi-label: binary cross-entropy [N, C]."""
  p = np.clip(np.asarray(probs, np.float64), NLL_EPS, 1.0 - NLL_EPS)
  if multi_label:
    y = (np.asarray(labels) > 0.5)
    return -np.where(y, np.log(p), np.log1p(-p))
  return -np.log(p[np.arange(len(p)), np.asarray(labels, np.int64)])


def nll(probs, labels, multi_label: bool = False) -> float:
  return float(_label_nll(probs, labels, multi_label).mean())


def scores(probs, labels, multi_label: bool = False) -> dict:
  """{"ece", "brier", "nll"} of probabilities [N, C] against labels."""
  return {"ece": ece(probs, labels, multi_label), "brier": brier(probs, labels, multi_label),
          "nll": nll(probs, labels, multi_label)}


def logits(probs, multi_label: bool) -> np.ndarray:
  """Logits [N, C] float64 recovered from probabilities: log p, or logit(p) (clipped)."""
  p = np.asarray(probs, np.float64)
  if multi_label:
    p = np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)
  return np.log(np.clip(p, NLL_EPS, 1.0))


def _scaled(z, temperature, multi_label: bool) -> np.ndarray:
  from scipy import special
  u = z / temperature
  return special.expit(u) if multi_label else special.softmax(u, axis=1)


def apply_temperature(probs, temperature, multi_label: bool) -> np.ndarray:
  """Calibrated probabilities [N, C] (the dtype of `probs`): softmax(z / T) or
  sigmoid(z_c / T_c); a temperature of 1 leaves its probabilities exactly as they are."""
  probs = np.asarray(probs)
  t = np.asarray(temperature, np.float64)
  if np.all(t == 1.0):
    return probs.copy()
  out = _scaled(logits(probs, multi_label), t, multi_label).astype(probs.dtype)
  if multi_label and t.ndim:
    keep = t == 1.0
    out[:, keep] = probs[:, keep]
  return out


def _objective(log_t, z, truth, multi_label: bool):
  """Mean dev NLL (summed over labels for multi-label) and its gradient in log T."""
  from scipy import special
  u = z / np.exp(log_t)
  if multi_label:
    nll_per_label = np.mean(np.logaddexp(0.0, u) - truth * u, axis=0)
    grad = -np.mean((special.expit(u) - truth) * u, axis=0)
    return float(nll_per_label.sum()), grad
  log_p = special.log_softmax(u, axis=1)
  value = -np.mean(np.sum(truth * log_p, axis=1))
  grad = -np.mean(np.sum((np.exp(log_p) - truth) * u, axis=1))
  return float(value), np.array([grad])


def fit_temperature(probs, labels, multi_label: bool = False) -> dict:
  """Temperature scaling fitted on (dev) probabilities [N, C] and labels.

  Returns {"temperature": float (multi-label: a list, one per label),
  "nll_before", "nll_after"}: the NLL `nll` gives before and after
  `apply_temperature`; nll_after <= nll_before always.
  """
  from scipy import optimize
  probs = np.asarray(probs)
  num_classes = probs.shape[1]
  z = logits(probs, multi_label)
  truth = (np.asarray(labels) > 0.5).astype(np.float64) if multi_label \
      else _onehot(labels, num_classes)
  size = num_classes if multi_label else 1
  fitted = np.zeros(size)
  if len(probs):
    result = optimize.minimize(_objective, np.zeros(size), args=(z, truth, multi_label),
                               jac=True, method="L-BFGS-B", bounds=[LOG_T_BOUNDS] * size)
    fitted = np.asarray(result.x, np.float64)
  temperature = np.exp(fitted)
  if multi_label:
    temperature[(truth.min(axis=0) == truth.max(axis=0)) if len(probs) else slice(None)] = 1.0
    before = _label_nll(probs, labels, True).mean(axis=0)
    after = _label_nll(apply_temperature(probs, temperature, True), labels, True).mean(axis=0)
    temperature[~(after < before)] = 1.0  # per label: only a lower NLL is kept
    out_t = [float(t) for t in temperature]
  else:
    out_t = float(temperature[0])
    if not nll(apply_temperature(probs, out_t, False), labels) < nll(probs, labels):
      out_t = 1.0
  return {"temperature": out_t, "nll_before": nll(probs, labels, multi_label),
          "nll_after": nll(apply_temperature(probs, out_t, multi_label), labels, multi_label)}


# --- a run's calibration: fitted on dev, reported on dev and test ---------------------


def split_report(probs, labels, multi_label: bool, record: dict | None, label_names=(),
                 at_least_one: bool = True) -> dict:
  """One split's figures: {"before": scores, ["after": scores of the calibrated
  probabilities, multi-label: "calibrated": their classification metrics at `record`'s
  thresholds]}; `record` is calibration.json's (None: before only)."""
  out = {"before": scores(probs, labels, multi_label)}
  if record is not None:
    calibrated = apply_temperature(probs, record["temperature"], multi_label)
    out["after"] = scores(calibrated, labels, multi_label)
    if multi_label:
      from textclf_jax.scoring import metrics as metrics_lib
      out["calibrated"] = metrics_lib.summary(metrics_lib.multi_label_metrics(
          calibrated, labels, list(label_names), record["thresholds"], at_least_one))
  return out


def calibrate_run(predictions: dict, multi_label: bool, label_names, fit: dict,
                  search: dict | None = None, threshold_mode: str = "",
                  at_least_one: bool = True) -> tuple:
  """A finished run's temperature scaling: predictions {"dev": (probs, labels), "test":
  (probs, labels)} (raw), `fit` (`fit_temperature` on dev) -> (calibration.json's
  record, results.json's "calibration" entry). Multi-label: `search` is the threshold
  search (metrics.search_thresholds' record) made on the calibrated dev probabilities,
  thresholds.json's too: the record holds it, with `threshold_mode`."""
  dev_probs, dev_labels = predictions["dev"]
  record = {"method": "temperature", "multi_label": bool(multi_label),
            "temperature": fit["temperature"], "fitted_on": "dev",
            "dev_nll_before": fit["nll_before"], "dev_nll_after": fit["nll_after"],
            "num_dev_examples": int(len(dev_labels)),
            "fit": "L-BFGS-B over log T from T = 1, T in [0.05, 20]; kept only where it "
                   "lowers dev NLL"}
  if multi_label:
    record["threshold_mode"] = threshold_mode
    record.update(search)
  entry = {"temperature": fit["temperature"]}
  for split, (probs, labels) in predictions.items():
    entry[split] = split_report(probs, labels, multi_label, record, label_names, at_least_one)
  return record, entry


def reliability_diagram(file: str, probs, labels, multi_label: bool, temperature,
                        title: str = "") -> bool:
  """A PNG of the reliability diagram before and after temperature scaling: per
  confidence bin, the mean outcome (bars) against the mean confidence (dots), the
  diagonal being perfect calibration. Drawn by matplotlib's Agg renderer on a Figure of
  its own (no pyplot: a caller's backend and figures are left alone). False (nothing
  written) without matplotlib."""
  try:
    from matplotlib.figure import Figure
  except ImportError:
    return False
  edges = np.linspace(0.0, 1.0, BINS + 1)
  centres = (edges[:-1] + edges[1:]) / 2
  panels = (("before", probs), ("after temperature scaling", apply_temperature(
      probs, temperature, multi_label)))
  fig = Figure(figsize=(9, 4.4))
  axes = fig.subplots(1, 2, sharey=True)
  for ax, (name, p) in zip(axes, panels):
    mean_conf, mean_outcome, count = reliability_bins(p, labels, multi_label)
    used = count > 0
    ax.bar(centres[used], mean_outcome[used], width=1 / BINS, edgecolor="black",
           color="#4c72b0", alpha=0.8, label="observed")
    ax.bar(centres, count / max(count.sum(), 1), width=1 / BINS, color="gray", alpha=0.45,
           label="share of the " + ("label probabilities" if multi_label else "examples"))
    ax.plot(mean_conf[used], mean_outcome[used], "o", color="#dd8452", ms=4,
            label="at mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    s = scores(p, labels, multi_label)
    ax.set_title(f"{name}\nECE {s['ece']:.4f}  NLL {s['nll']:.4f}  Brier {s['brier']:.4f}",
                 fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("label probability" if multi_label else "top-label confidence")
  axes[0].set_ylabel("fraction of labels present" if multi_label else "accuracy")
  axes[0].legend(loc="upper left", fontsize=8)
  t = f"{temperature:.4g}" if np.ndim(temperature) == 0 else \
      f"{np.min(temperature):.3g}-{np.max(temperature):.3g} (per label)"
  fig.suptitle(f"{title}  T = {t}", fontsize=11)
  fig.tight_layout()
  tmp = file + ".tmp.png"
  fig.savefig(tmp, dpi=100, format="png")
  os.replace(tmp, file)
  return True


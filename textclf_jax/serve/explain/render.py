"""A self-contained HTML page of `explain`'s rows: inline CSS, no scripts, no fetches.

Each token's background is red where its attribution pushes towards the explained
label and blue where it pushes against it; the opacity is |a| / max |a| over that
text's tokens. Hovering a token shows its attribution.
"""

from __future__ import annotations

from html import escape

from textclf_jax.serve.explain.integrated import BASELINE

RED, BLUE = (214, 39, 40), (31, 119, 180)

CSS = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 60em; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
.meta, .legend, .check { color: #555; font-size: .9em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin: 1em 0; }
.prediction { font-weight: 600; }
.label { margin-top: .6em; }
.tokens { line-height: 2.1; margin: .3em 0; }
.tok { padding: .15em .25em; margin: 0 .05em; border-radius: 3px; white-space: pre; }
.unk { text-decoration: underline dotted; }
.ok { color: #2a7d2a; } .bad { color: #b00020; font-weight: 600; }
table { border-collapse: collapse; font-size: .85em; margin-top: .4em; }
td, th { border-bottom: 1px solid #eee; padding: .15em .6em; text-align: left; }
.swatch { display: inline-block; width: 1.2em; height: .9em; vertical-align: middle;
          border-radius: 2px; margin: 0 .3em; }
"""


def _colour(value: float, scale: float) -> str:
  strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
  r, g, b = RED if value > 0 else BLUE
  return f"background: rgba({r}, {g}, {b}, {0.85 * strength:.3f})"


def _tokens(tokens: list, attributions: list, unknown: set) -> str:
  scale = max((abs(a) for a in attributions), default=0.0)
  spans = []
  for i, (token, value) in enumerate(zip(tokens, attributions)):
    cls = "tok unk" if i in unknown else "tok"
    note = " (not in the vocabulary)" if i in unknown else ""
    spans.append(f'<span class="{cls}" style="{_colour(value, scale)}" '
                 f'title="{value:+.4f}{note}">{escape(token)}</span>')
  return '<div class="tokens">' + " ".join(spans) + "</div>"


def _check(entry: dict) -> str:
  c = entry["completeness"]
  verdict = ('<span class="ok">within tolerance</span>' if c["ok"]
             else '<span class="bad">outside tolerance: raise --steps</span>')
  return (f'<div class="check">logit {entry["logit"]:.4f}, baseline {entry["baseline_logit"]:.4f}; '
          f'attributions sum to {c["sum"]:.4f} against a logit difference of {c["delta"]:.4f}: '
          f'gap {c["gap"]:+.4f} ({verdict}, tolerance {c["tolerance"]:g} &times; '
          f'max(1, |difference|))</div>')


def _filters(filters: list) -> str:
  if not filters:
    return ""
  rows = "".join(f'<tr><td>{f["width"]}</td><td>{f["filter"]}</td><td>{escape(f["ngram"])}</td>'
                 f'<td>{f["activation"]:.3f}</td><td>{f["contribution"]:+.3f}</td></tr>'
                 for f in filters)
  return ('<table><tr><th>width</th><th>filter</th><th>winning n-gram</th>'
          '<th>activation</th><th>contribution</th></tr>' + rows + "</table>")


def _prediction(row: dict) -> str:
  if "labels" in row:
    chosen = ", ".join(row["labels"]) or "(no label above its threshold)"
  else:
    chosen = row["label"]
  probs = ", ".join(f"{escape(k)} {v:.3f}" for k, v in row["probabilities"].items())
  return (f'<div class="prediction">predicted: {escape(chosen)}</div>'
          f'<div class="meta">probabilities: {probs}</div>')


def _card(row: dict) -> str:
  if "error" in row:
    return f'<div class="card"><div class="meta">{escape(row["error"])}</div></div>'
  parts = [_prediction(row)]
  if row.get("truncated"):
    parts.append(f'<div class="meta">{row["truncated"]} tokens past max_len were not seen '
                 "by the model</div>")
  unknown = set(row.get("unknown", ()))
  for entry in row["explanations"]:
    kind = "predicted" if entry["predicted"] else "not predicted"
    parts.append(f'<div class="label">attributions to <b>{escape(entry["label"])}</b> '
                 f"({kind})</div>")
    parts.append(_tokens(row["tokens"], entry["attributions"], unknown))
    parts.append(_check(entry))
    parts.append(_filters(entry.get("filters", [])))
  return '<div class="card">' + "".join(parts) + "</div>"


def page(rows: list, run: str, steps: int, rule: str) -> str:
  """The whole HTML document for `explain`'s rows (one card per text)."""
  baseline = next((row["baseline"] for row in rows if "baseline" in row), BASELINE)
  legend = (f'<span class="swatch" style="background: rgb{RED}"></span>towards the label '
            f'<span class="swatch" style="background: rgb{BLUE}"></span>against it; '
            "stronger colour, larger |attribution| (hover a token for its value)")
  return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<title>textclf explain: {escape(run)}</title><style>{CSS}</style></head><body>"
          f"<h1>Why the model decided</h1><div class=\"meta\">run {escape(run)}; integrated "
          f"gradients over the embeddings, {steps} steps ({rule}), baseline "
          f"{escape(baseline)}</div><div class=\"legend\">{legend}</div>"
          + "".join(_card(row) for row in rows) + "</body></html>\n")

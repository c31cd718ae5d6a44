"""The accelerator check's report: summary.md and the tables in it (throughput, time to
accuracy), from the summary that summary.json holds."""

from __future__ import annotations

from accelerator.spec import PARTS, PEAKS


def throughput_table(rows: list, torch_rows: list, peaks: dict) -> str:
  """The throughput rows (and PyTorch's on the same shapes) against `peaks`
  (Check.peaks: nominal and measured)."""
  nominal, measured = peaks["nominal"], peaks["measured"]
  torch_by = {(t["model"], t["shape"], t["batch"], t["dtype"]): t for t in torch_rows}
  head = ("| model | shape | batch x length | dtype | compile s | examples/s | tokens/s "
          "| model GFLOP/step | model TFLOP/s | % nominal peak | % measured peak "
          "| torch examples/s | ours / torch |")
  lines = [head, "|---" * (head.count("|") - 1) + "|"]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['model']} | {r['shape']} | {r['batch']} x {r['length']} | "
                   f"{r['dtype']} | error: {r['error'][:80]} |" + " |" * 8)
      continue
    bf16 = r["dtype"] == "bfloat16"
    flops = r["model_flops_per_s"]
    if nominal:
      pct = (f"{100 * flops / nominal['bf16']:.2f}% of bf16" if bf16 else
             f"{100 * flops / nominal['tf32']:.2f}% of TF32, "
             f"{100 * flops / nominal['fp32']:.1f}% of fp32")
    else:
      pct = "-"
    m = measured.get("bf16" if bf16 else "fp32")
    mpct = f"{100 * flops / m:.2f}%" if m else "-"
    t = torch_by.get((r["model"], r["shape"], r["batch"], r["dtype"]))
    t_eps = f"{t['examples_per_s']:,.0f}" if t and "error" not in t else (
        "error" if t else "-")
    ratio = (f"{r['examples_per_s'] / t['examples_per_s']:.2f}"
             if t and "error" not in t else "-")
    variant = ", ".join(n for n, on in [("sparse table", r.get("sparse")),
                                        ("sparse bwd", r.get("sparse_conv"))] if on)
    lines.append(
        f"| {r['model']}{f' ({variant})' if variant else ''} | {r['shape']} | "
        f"{r['batch']} x {r['length']} | {r['dtype']} | {r['compile_s']:.2f} | "
        f"{r['examples_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | "
        f"{r['model_flops_per_step'] / 1e9:.2f} | {flops / 1e12:.3f} | {pct} | {mpct} | "
        f"{t_eps} | {ratio} |")
  return "\n".join(lines)


def encoder_table(rows: list) -> str:
  """The encoder fine-tuning step's rows (children.child_encoder), bf16 against f32."""
  f32 = next((r for r in rows if r["dtype"] == "float32" and "error" not in r), None)
  lines = ["| dtype | layers x hidden | batch x length | compile s | step ms | examples/s "
           "| tokens/s | vs float32 |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    shape = f"{r['layers']} x {r['hidden']} | {r['batch']} x {r['length']}"
    if "error" in r:
      lines.append(f"| {r['dtype']} | {shape} | error: {r['error'][:80]} | | | | |")
      continue
    ratio = f"{r['examples_per_s'] / f32['examples_per_s']:.2f}x" if f32 else "-"
    lines.append(f"| {r['dtype']} | {shape} | {r['compile_s']:.1f} | {r['step_ms']:.2f} | "
                 f"{r['examples_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | {ratio} |")
  return "\n".join(lines)


def tta_table(runs: list) -> str:
  lines = ["| dataset | preset | target | cache | reached | seconds from process start | "
           "data s | first step s | steps | accuracy | best accuracy (at s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    if "seconds" not in r:
      best = (f"{r['best_accuracy']:.4f} ({r['best_seconds']:.1f})"
              if r.get("best_seconds") else "")
      data_s = f"{r['data_s']:.1f}" if r.get("data_s") else ""
      first = f"{r['first_step_s']:.1f}" if r.get("first_step_s") else ""
      lines.append(f"| {r['dataset']} | {r['preset']} | {r['split']} {r['target']:.2f} | "
                   f"{r['cache']} | {r['status']} after {r['wall_s']} s | | {data_s} | "
                   f"{first} | {r.get('steps', '')} | {r.get('accuracy', '')} | {best} |")
      continue
    lines.append(
        f"| {r['dataset']} | {r['preset']} | {r['split']} {r['target']:.2f} | {r['cache']} | "
        f"{'yes' if r['reached'] else 'no'} | {r['seconds']:.1f} | {r['data_s']:.1f} | "
        f"{(r.get('first_step_s') or 0):.1f} | {r['steps']} | {r['accuracy']:.4f} | "
        f"{r['best_accuracy']:.4f} ({r['best_seconds']:.1f}) |")
  return "\n".join(lines)


def markdown(summary: dict) -> str:
  """summary.md: one line per part, then each part's figures."""
  s, parts = summary, summary["parts"]
  env = parts.get("env", {})
  lines = [f"# Accelerator check ({s['mode']} run), {s['started']}", "",
           f"{s.get('elapsed_s', 0)} s of a {s['budget_s']} s budget. "
           f"Device: {env.get('device_kind') or '?'} x {env.get('device_count') or '?'} "
           f"({env.get('backend') or '?'}); jax {(env.get('versions') or {}).get('jax', '?')}"
           f", python {env.get('python') or '?'}.", "",
           "| part | status | seconds | figures |", "|---|---|---|---|"]
  for name in PARTS:
    p = parts.get(name)
    if p is None:
      lines.append(f"| {name} | not run | | |")
      continue
    lines.append(f"| {name} | {p.get('status')} | {p.get('seconds')} | "
                 f"{figures_line(name, p)} |")
  if env.get("device_kind"):
    mp = env.get("measured_peaks") or {}
    lines += ["", "## Environment", "", f"- mesh: `{env.get('mesh', '')}`",
              f"- versions: {env.get('versions')}",
              f"- torch: {env.get('torch')}",
              f"- default matmul precision: {env.get('default_matmul_precision')}",
              "- measured matmul peaks (TFLOP/s, n = matmul size): " + ", ".join(
                  f"{k} {v / 1e12:.2f}" for k, v in mp.items())]
  tests = parts.get("tests")
  if tests and tests.get("groups"):
    lines += ["", "## Tests (`pytest -x -q`)", "", "| group | status | counts | seconds | "
              "failed | deterministic rerun |", "|---|---|---|---|---|---|"]
    for g, r in tests["groups"].items():
      rerun = r.get("deterministic_rerun")
      lines.append(f"| {g} | {r['status']} | {r['counts']} | {r['seconds']} | "
                   f"{', '.join(r['failed']) or '-'} | "
                   f"{(rerun['status'] + ' ' + str(rerun['counts'])) if rerun else '-'} |")
  tp = parts.get("throughput")
  if tp and tp.get("table"):
    nominal = PEAKS
    lines += ["", "## Throughput", "",
              f"Nominal H200 peaks: bf16 {nominal['bf16'] / 1e12:.0f}, TF32 "
              f"{nominal['tf32'] / 1e12:.0f}, fp32 {nominal['fp32'] / 1e12:.0f} TFLOP/s "
              "(bf16 rows against bf16; float32 rows against TF32, which XLA's default "
              "precision uses, and plain fp32). Model FLOPs: XLA's cost analysis of the step "
              "with the dense convolution backward pass.", "", tp["table"]]
  enc = parts.get("encoder")
  if enc and enc.get("table"):
    lines += ["", "## Encoder fine-tuning step", "", "bench/encoder_speed.py's step (BERT "
              "encoder, mean pooling, linear head, cross entropy, AdamW on every parameter, "
              "dropout 0.1) at all-MiniLM-L6-v2's shape, random weights, float32 params.", "",
              enc["table"]]
  mm = parts.get("many_models")
  if mm and mm.get("seeds"):
    lines += ["", "## Many models", "", f"`bench/many_models.py {mm['args']}`: vmapped "
              f"{mm['vmapped_s']} s, sequential {mm['sequential_s']} s, speed-up "
              f"{mm['speedup']}x; {mm['identical_seeds']} of {len(mm['seeds'])} seeds with "
              f"the same test accuracy. {mm['bar']}"]
  tta = parts.get("time_to_accuracy")
  if tta and tta.get("table"):
    lines += ["", "## Time to accuracy", "", tta["table"], "", tta["reference"]]
  return "\n".join(lines) + "\n"

def figures_line(name: str, p: dict) -> str:
  if p.get("error"):
    return f"error: {p['error'][:120]}"
  if name == "env":
    if not p.get("device_kind"):
      return p.get("note", "")
    mp = p.get("measured_peaks") or {}
    return (f"{p.get('device_kind')} x {p.get('device_count')}; bf16 matmul "
            f"{(mp.get('bf16') or 0) / 1e12:.1f} TFLOP/s; {p.get('mesh', '')[:80]}")
  if name == "tests":
    return "; ".join(f"{g}: {r['status']} {r['counts']}" for g, r in p.get("groups", {}).items())
  if name == "throughput" and "rows_planned" in p:
    return f"{p.get('rows_done')} of {p.get('rows_planned')} rows; torch: {p.get('torch')}"
  if name == "encoder" and p.get("rows"):
    return "; ".join(f"{r['dtype']}: " + (f"{r['examples_per_s']:,.0f} examples/s"
                                          if "error" not in r else "error")
                     for r in p["rows"])
  if name == "many_models" and p.get("seeds"):
    return (f"speed-up {p.get('speedup')}x, {p.get('identical_seeds')} of "
            f"{len(p.get('seeds') or [])} seeds identical")
  if name == "time_to_accuracy":
    return "; ".join(
        f"{r['dataset']} {r['cache']}: "
        + (f"{r['seconds']:.1f} s, {'reached' if r.get('reached') else 'not reached'}"
           f" ({r.get('accuracy', 0):.3f})" if "seconds" in r else
           f"{r['status']} (best {r.get('best_accuracy', 0):.3f})")
        for r in p.get("runs", [])) + (f" ({p['note']})" if p.get("note") else "")
  return p.get("note", "")

"""The same three models in PyTorch, for `bench/throughput.py --torch`.

Same layers and sizes as textclf_jax's presets: Kim CNN (wide convolution by
padding the input with w - 1 zero vectors, ReLU, masked max-over-time, dropout,
linear head, max-norm on the head's rows), the bidirectional LSTM classifier
(final states), and the CNN -> LSTM hybrid ('same' convolution). Same optimiser
(Adadelta lr 1 rho 0.95 eps 1e-6 for the CNN; Adam + global-norm clipping 5 for
the recurrent models), same batch, same inputs (every row full length, so
nn.LSTM needs no packing — the fastest case for PyTorch).

Needs the optional `bench` extra: pip install ".[bench]" (torch, CPU build).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class KimCNN(nn.Module):
  def __init__(self, vocab, dim, classes, widths=(3, 4, 5), filters=100, dropout=0.5,
               static=False):
    super().__init__()
    self.embed = nn.Embedding(vocab, dim, padding_idx=0)
    self.embed.weight.requires_grad_(not static)
    self.widths = widths
    self.convs = nn.ModuleList([nn.Conv1d(dim, filters, w) for w in widths])
    self.dropout = nn.Dropout(dropout)
    self.head = nn.Linear(filters * len(widths), classes)

  def forward(self, tokens, lengths):
    x = self.embed(tokens).transpose(1, 2)  # [B, D, L]
    pooled = []
    for w, conv in zip(self.widths, self.convs):
      h = torch.relu(conv(nn.functional.pad(x, (w - 1, w - 1))))  # [B, F, L + w - 1]
      valid = torch.arange(h.shape[2], device=h.device)[None, :] < (lengths + w - 1)[:, None]
      pooled.append(h.masked_fill(~valid[:, None, :], 0.0).amax(dim=2))
    return self.head(self.dropout(torch.cat(pooled, dim=1)))


class LSTMClassifier(nn.Module):
  def __init__(self, vocab, dim, classes, hidden=150, bidirectional=True, dropout=0.5,
               static=False):
    super().__init__()
    self.embed = nn.Embedding(vocab, dim, padding_idx=0)
    self.embed.weight.requires_grad_(not static)
    self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=bidirectional)
    self.dropout = nn.Dropout(dropout)
    self.head = nn.Linear(hidden * (2 if bidirectional else 1), classes)

  def forward(self, tokens, lengths):
    _, (h, _) = self.lstm(self.dropout(self.embed(tokens)))
    return self.head(self.dropout(torch.cat(list(h), dim=-1)))


class CNNLSTM(nn.Module):
  def __init__(self, vocab, dim, classes, width=3, filters=128, hidden=128, dropout=0.5,
               static=False):
    super().__init__()
    self.embed = nn.Embedding(vocab, dim, padding_idx=0)
    self.embed.weight.requires_grad_(not static)
    self.conv = nn.Conv1d(dim, filters, width, padding="same")
    self.lstm = nn.LSTM(filters, hidden, batch_first=True)
    self.dropout = nn.Dropout(dropout)
    self.head = nn.Linear(hidden, classes)

  def forward(self, tokens, lengths):
    x = torch.relu(self.conv(self.embed(tokens).transpose(1, 2))).transpose(1, 2)
    _, (h, _) = self.lstm(self.dropout(x))
    return self.head(self.dropout(h[-1]))


def bench_torch(model_name: str, length: int, batch: int, steps: int, vocab: int,
                embedding: str, embed_dim: int, device: str = "cpu",
                compute_dtype: str = "float32") -> dict:
  """Training examples/s of the PyTorch model (after a warm-up), like bench_one.

  `device` "cuda" runs it on the GPU (timed between synchronisations);
  `compute_dtype` "bfloat16" runs forward and loss under bf16 autocast, with
  float32 parameters and optimiser state (like `compute_dtype` in the config).
  """
  torch.manual_seed(0)
  static = embedding == "static"
  model = {"cnn": KimCNN, "lstm": LSTMClassifier, "hybrid": CNNLSTM}[model_name](
      vocab, embed_dim, 2, static=static).to(device)
  params = [p for p in model.parameters() if p.requires_grad]
  if model_name == "cnn":
    opt = torch.optim.Adadelta(params, lr=1.0, rho=0.95, eps=1e-6)
  else:
    opt = torch.optim.Adam(params, lr=2e-3)
  rng = np.random.default_rng(0)
  batches = [(torch.from_numpy(rng.integers(2, vocab, (batch, length))).to(device),
              torch.full((batch,), length, device=device),
              torch.from_numpy(rng.integers(0, 2, batch)).to(device))
             for _ in range(4)]
  autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                            enabled=compute_dtype == "bfloat16")

  def sync():
    if torch.device(device).type == "cuda":
      torch.cuda.synchronize()
  loss_fn = nn.CrossEntropyLoss()
  model.train()

  def step(tokens, lengths, labels):
    opt.zero_grad(set_to_none=True)
    with autocast:
      loss = loss_fn(model(tokens, lengths), labels)
    loss.backward()
    if model_name != "cnn":
      nn.utils.clip_grad_norm_(params, 5.0)
    opt.step()
    if model_name == "cnn":  # Kim's max-norm 3 on the output weights (rows per class)
      with torch.no_grad():
        w = model.head.weight
        w.mul_(torch.clamp(3.0 / w.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0))
    return loss

  for b in batches:  # warm-up
    step(*b)
  sync()
  start, cpu = time.perf_counter(), time.process_time()
  for i in range(steps):
    step(*batches[i % len(batches)])
  sync()
  seconds = time.perf_counter() - start
  cpu = time.process_time() - cpu
  return {"examples_per_s": steps * batch / seconds, "cpu_ms_per_step": 1e3 * cpu / steps,
          "params": sum(p.numel() for p in params), "threads": torch.get_num_threads(),
          "device": str(device), "dtype": compute_dtype}

"""`textclf explain`: integrated gradients per token, Kim-style n-grams per CNN filter,
and a self-contained HTML page of the attributions."""

from textclf_jax.serve.explain.core import (Explainer, explain_texts, load, ngrams_markdown, split_ngrams)

__all__ = ["Explainer", "explain_texts", "load", "ngrams_markdown", "split_ngrams"]

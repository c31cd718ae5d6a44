"""Moved into the package: the TF-IDF + logistic regression baseline is the model
`tfidf` of textclf_jax/linear.py (`textclf train --config tfidf`, `textclf eval`,
`textclf predict`). This name stays for scripts that import it from here."""

from textclf_jax.linear import C_GRID, MODEL, train_tfidf  # noqa: F401

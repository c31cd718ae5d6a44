"""textclf_jax: neural text classification in JAX/Flax."""

__version__ = "0.1.0"

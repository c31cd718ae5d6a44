"""`textclf export`: a saved run as an ONNX or StableHLO model plus JSON, checked for parity.

    export_run(RUN, "onnx", OUT)  ->  OUT/manifest.json  vocab.json  model.onnx

The export is written to a temporary directory beside OUT, loaded back with
`textclf_jax.serve.serving` (the loader users get) and compared with the JAX model on
(a sample of) the run's test split; only if every probability agrees within
TOLERANCE and every prediction is the same is it renamed to OUT. See docs/export.md.
"""

from textclf_jax.serve.export.exporter import TOLERANCE, ParityError, export_run

__all__ = ["TOLERANCE", "ParityError", "export_run"]

"""Pretrained transformer encoders (BERT, RoBERTa, DistilBERT) read from local Hugging
Face-format folders: bert.py the modules, hf_load.py the reader, pooling.py the layer
mixes and token pooling. Text goes in as ids from textclf_jax.text.subword."""

from textclf_jax.models.encoders.bert import Encoder, EncoderConfig
from textclf_jax.models.encoders.hf_load import load_config, load_encoder
from textclf_jax.models.encoders.pooling import ScalarMix, cls_pool, mean_last, mean_pool, pool

__all__ = ["Encoder", "EncoderConfig", "ScalarMix", "cls_pool", "load_config", "load_encoder",
           "mean_last", "mean_pool", "pool"]

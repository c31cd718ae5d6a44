"""What the accelerator check runs and how long it may take: its parts, their time
budgets, the test groups, the throughput rows, the report's files and the H200's peaks."""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
REPO = os.path.dirname(HERE)
SCRIPT = os.path.join(HERE, "accelerator_check.py")  # what the children are started as

# Peak dense matrix throughput of one H200 (SXM), FLOP/s. bf16: what a 8192^3 bf16
# product reached on this workplace's H200s (769-798 TFLOP/s; NVIDIA's figure is 989).
# TF32: half the bf16 rate, as on every Hopper (NVIDIA: 494 of 989); XLA's DEFAULT
# precision lets float32 dots and convolutions run as TF32 on the GPU. fp32: the
# CUDA cores without tensor cores (NVIDIA: 67 TFLOP/s).
PEAKS = {"bf16": 790e12, "tf32": 395e12, "fp32": 67e12}
FASTTEXT_IMDB = ("fastText: 89.9% test on IMDB in 19 s of training on the project's 2-core "
                 "CPU (issue 19)")

OUT_FILES = ("summary.json", "summary.md", "check.log", "environment.txt", "tests.log",
             "throughput.log", "many_models.log", "time_to_accuracy.log")
PARTS = ("env", "tests", "throughput", "encoder", "many_models", "time_to_accuracy")
DEFAULT_BUDGET = {"real": 465, "dry": 200}  # seconds for the whole check
BUDGETS = {  # seconds per part, real run and dry run (shares of the whole)
    "real": {"env": 35, "tests": 125, "throughput": 120, "encoder": 35, "many_models": 55,
             "time_to_accuracy": 95},
    "dry": {"env": 20, "tests": 25, "throughput": 35, "encoder": 15, "many_models": 30,
            "time_to_accuracy": 40},
}

# The test subset that means something on a GPU: groups run one after another,
# each `pytest -x -q`, so that a failure in one does not hide the others.
TEST_GROUPS = {
    "real": [
        ("models", ["tests/test_models.py", "tests/test_losses.py", "tests/test_optim.py",
                    "tests/test_conv_pool.py"]),
        ("steps", ["tests/test_train_step.py", "tests/test_sparse_embed.py",
                   "-k", "not simulated"]),
        ("checkpoint_resume", ["tests/test_end_to_end.py", "-k",
                               "kill_and_resume or train_eval_predict"]),
        ("many_models", ["tests/test_many.py", "tests/test_group_paths.py", "-k",
                         "bit_for_bit or seeds_match_solo"]),
    ],
    "dry": [
        ("models", ["tests/test_losses.py", "-k", "softmax_cross_entropy_by_hand"]),
        ("steps", ["tests/test_optim.py", "-k", "schedules_values"]),
    ],
}
RERUN_DETERMINISTIC = ("checkpoint_resume", "many_models")
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"

THROUGHPUT = {  # shapes are tokens per example; steps are timed steps per shape
    "real": {"models": ["cnn", "lstm", "hybrid"], "shapes": {"imdb": 400, "sst2": 20},
             "batches": [512, 50], "dtypes": ["bfloat16", "float32"],
             "steps": {"imdb": 20, "sst2": 50}, "vocab": 20000, "embed_dim": 100},
    "dry": {"rows": [("cnn", "sst2", 4, "float32"), ("hybrid", "sst2", 4, "bfloat16")],
            "shapes": {"sst2": 8}, "steps": {"sst2": 2}, "vocab": 300, "embed_dim": 16},
}

# bench/encoder_speed.py's fine-tuning step at all-MiniLM-L6-v2's shape (random weights:
# the speed does not depend on them), float32 and bfloat16 compute, float32 params.
MINILM_L6 = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
             "num_attention_heads": 12, "intermediate_size": 1536,
             "max_position_embeddings": 512}
ENCODER = {
    "real": {"config": MINILM_L6, "batch": 32, "length": 128, "steps": 50,
             "dtypes": ["float32", "bfloat16"]},
    "dry": {"config": {"vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "intermediate_size": 32,
                       "max_position_embeddings": 16},
            "batch": 4, "length": 8, "steps": 2, "dtypes": ["float32", "bfloat16"]},
}

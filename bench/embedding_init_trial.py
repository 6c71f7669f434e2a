"""One-off trial: test AUC of the large peer size class under different embedding initialisations.

Trains ``bench/peer_throughput.py``'s large class (200,000 rows, 8 experts × 256) as its ``mmoe_tf/numpy`` contender
does (a 64-batch warm-up, then 3 epochs at batch 2,048) and prints the test AUC per task. Variants replace
``FeatureEncoder._embedding``: ``keras`` (uniform ±0.05), ``torchrec`` (uniform ±1/√rows), ``normal`` (DeepCTR's
N(0, 1e-4)), ``cap`` (uniform ±min(0.05, 1/√rows)); ``zero_oov`` and ``capzero`` also zero the out-of-vocabulary
rows; ``tree`` leaves the tree's own default.

Usage:
    .venv/bin/python bench/embedding_init_trial.py VARIANT SEED
"""

import sys

import harness  # noqa: F401  (sets up the import path and TF_USE_LEGACY_KERAS)
import numpy as np
import peer_throughput as pt
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import mmoe_tf
from data import feature_arrays
from mmoe_tf import features

variant, seed = sys.argv[1], int(sys.argv[2])
limits = {"keras": lambda n: 0.05, "torchrec": lambda n: n**-0.5, "cap": lambda n: min(0.05, n**-0.5)}
limits |= {"zero_oov": limits["keras"], "capzero": limits["cap"]}


def embedding(self, size, dim, index, name, oov_rows=0):
    seed_ = self.seed * 7919 + index
    if variant == "normal":
        init = tf.keras.initializers.RandomNormal(0.0, 1e-4, seed=seed_)
    else:
        init = tf.keras.initializers.RandomUniform(-limits[variant](size), limits[variant](size), seed=seed_)
    if variant in ("zero_oov", "capzero") and oov_rows:
        uniform = init

        def init(shape, dtype=None):
            return tf.concat([tf.zeros([oov_rows, shape[1]]), uniform(shape, dtype)[oov_rows:]], 0)

    return tf.keras.layers.Embedding(size, dim, embeddings_initializer=init, name=name)


if variant != "tree":
    features.FeatureEncoder._embedding = embedding
frames, schema = pt.table("large", 200_000)
train, test = frames["train"], frames["test"]
config = schema.model_config(num_experts=8, expert_units=(256,), tower_units=(64,), learning_rate=1e-3, seed=seed)
model = mmoe_tf.build_model(config, adapt_data=feature_arrays(train, schema))
x, y = feature_arrays(train, schema), {t.name: train[t.name].to_numpy() for t in schema.tasks}
warm = 64 * 2048 + len(train) % 2048
model.fit({k: v[:warm] for k, v in x.items()}, {k: v[:warm] for k, v in y.items()}, batch_size=2048, verbose=0)
model.fit(x, y, batch_size=2048, epochs=3, shuffle=True, verbose=0)
scores = model.predict(feature_arrays(test, schema), batch_size=2048, verbose=0)
print(variant, seed, {k: round(roc_auc_score(test[k], np.ravel(scores[k])), 4) for k in y})

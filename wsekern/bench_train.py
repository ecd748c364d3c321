"""``wsekern bench train``: training with wsekern.nn beside the same training in PyTorch.

Each case builds the same model in both (PyTorch only when installed, always dense), feeds
the same batches in the same order (no shuffling) and times whole epochs, the two
interleaved and repeated; the table gives each one's best time and their ratio. Threads
are limited alike (threadpoolctl for NumPy's BLAS and OpenMP, ``torch.set_num_threads``).
``scale`` shrinks (or grows) every case's sample count, for a quick look. Peak memory is
NumPy's allocations during one extra epoch of wsekern under tracemalloc (untimed).
"""
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from . import sparse_dense
from .bench import _optional, limit_threads, machine_line


@dataclass
class Case:
    """One row of the table: the model family, its layer sizes (MLPs), the samples of one
    epoch, the batch, the weight sparsity (wsekern only) and the optimizer."""
    name: str
    kind: str                       # "mlp", "convnet", "tiny" or "gpt"
    sizes: tuple = ()
    samples: int = 0
    batch: int = 32
    sparsity: float = 0.0
    optimizer: str = "adam"


CASES = (
    Case("MLP 784-1024-10, MNIST, batch 32", "mlp", (784, 1024, 10), 5000, 32),
    Case("MLP 64-256-256-10, digits, batch 64", "mlp", (64, 256, 256, 10), 1437, 64),
    Case("MLP 784-1024-1024-10, MNIST, batch 128", "mlp", (784, 1024, 1024, 10), 10000, 128),
    Case("MLP 784-1024-1024-10, 90% sparse", "mlp", (784, 1024, 1024, 10), 10000, 128, 0.9),
    Case("keras.io MNIST convnet, batch 128", "convnet", (), 2000, 128),
    Case("keras.io MNIST convnet, conv 90% pruned", "convnet", (), 2000, 128, 0.9),
    Case("char GPT 2x d128, batch 32 (30 steps)", "gpt", (), 30 * 32, 32, 0.0, "adamw"),
    Case("char GPT 2x d128, 90% sparse (30 steps)", "gpt", (), 30 * 32, 32, 0.9, "adamw"),
    Case("10 tiny layers (Dense 8), batch 1, SGD", "tiny", (8,) * 10 + (4,), 200, 1, 0.0,
         "sgd"),
)


# -- data ---------------------------------------------------------------------------------
def _mnist(n, image):
    from . import data
    (xm, ym), (xt, yt) = data.load_mnist(reshape=image)
    reps = -(-n // (len(xm) + len(xt)))
    x = np.concatenate([xm, xt] * reps)[:n]
    y = np.concatenate([ym, yt] * reps)[:n]
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def case_data(case):
    if case.kind == "convnet":
        return _mnist(case.samples, True)
    if case.kind == "gpt":
        from . import data
        tok, ids, _ = data.load_text()
        x, y = data.lm_windows(ids, 64, case.samples, seed=0)
        return x, y.astype(np.int64)
    if case.kind == "tiny":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((case.samples, case.sizes[0])).astype(np.float32)
        return x, rng.integers(0, case.sizes[-1], case.samples).astype(np.int64)
    if case.sizes[0] == 64:
        from . import data
        (x, y), _ = data.load_digits()
        return (np.ascontiguousarray(x[:case.samples], dtype=np.float32),
                y[:case.samples].astype(np.int64))
    return _mnist(case.samples, False)


# -- the wsekern models -------------------------------------------------------------------
def wsekern_model(case):
    from .nn import Input, Sequential, layers, optimizers, utils
    utils.set_random_seed(0)
    if case.kind == "gpt":
        from . import data
        from .nn.models import GPT
        tok, _, _ = data.load_text()
        model = GPT(gpt_config(tok.vocab_size, case.sparsity))
        model.compile(optimizers.AdamW(1e-3, weight_decay=0.1))
        return model
    if case.kind == "convnet":                # keras.io/examples/vision/mnist_convnet
        model = Sequential([
            Input(shape=(28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu", sparsity=case.sparsity),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", sparsity=case.sparsity),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax")])
    else:
        model = Sequential([Input(shape=(case.sizes[0],))])
        for units in case.sizes[1:-1]:
            model.add(layers.Dense(units, activation="relu", sparsity=case.sparsity))
        model.add(layers.Dense(case.sizes[-1], activation="softmax"))
    opt = "adam" if case.optimizer == "adam" else optimizers.SGD(0.01)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    return model


def gpt_config(vocab_size, sparsity=0.0):
    from .nn.models import GPTConfig
    return GPTConfig(vocab_size=vocab_size, context=64, n_layer=2, n_head=4, d_model=128,
                     mlp_dim=512, sparsity=sparsity)


# -- the PyTorch models -------------------------------------------------------------------
def torch_model(torch, case, vocab_size=None):
    nn = torch.nn
    torch.manual_seed(0)
    if case.kind == "gpt":
        return torch_gpt(torch, gpt_config(vocab_size))
    if case.kind == "convnet":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Dropout(0.5), nn.Linear(1600, 10))
    mods = []
    for a, b in zip(case.sizes[:-1], case.sizes[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def torch_gpt(torch, c):
    """The same GPT in PyTorch (pre-LN blocks, exact GELU, learned positions, untied head);
    ``load_wsekern(weights)`` copies a wsekern GPT's weights in."""
    F = torch.nn.functional

    class Block(torch.nn.Module):
        def __init__(self, d, heads, mlp):
            super().__init__()
            self.heads = heads
            self.ln1 = torch.nn.LayerNorm(d, eps=c.epsilon)
            self.ln2 = torch.nn.LayerNorm(d, eps=c.epsilon)
            self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
            self.fc, self.proj = torch.nn.Linear(d, mlp), torch.nn.Linear(mlp, d)

        def forward(self, x):
            B, T, d = x.shape
            h = self.ln1(x)
            q, k, v = (f(h).view(B, T, self.heads, d // self.heads).transpose(1, 2)  # (B,H,T,k)
                       for f in (self.q, self.k, self.v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(y.transpose(1, 2).reshape(B, T, d))
            return x + self.proj(F.gelu(self.fc(self.ln2(x))))

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = torch.nn.Embedding(c.vocab_size, c.d_model)
            self.pos = torch.nn.Parameter(torch.zeros(c.context, c.d_model))
            self.blocks = torch.nn.ModuleList(Block(c.d_model, c.n_head, c.mlp_dim)
                                              for _ in range(c.n_layer))
            self.ln_f = torch.nn.LayerNorm(c.d_model, eps=c.epsilon)
            self.head = torch.nn.Linear(c.d_model, c.vocab_size)

        def forward(self, ids):
            x = self.tok(ids) + self.pos[:ids.shape[1]]
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln_f(x))

        def load_wsekern(self, weights):
            """wsekern.nn's weights in its order (Dense kernels are (in, out): transposed)."""
            it = iter(weights)
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a))        # noqa: E731
            linears = lambda b: (b.q, b.k, b.v, b.o)                       # noqa: E731
            with torch.no_grad():
                self.tok.weight.copy_(t(next(it)))
                self.pos.copy_(t(next(it)))
                for b in self.blocks:
                    b.ln1.weight.copy_(t(next(it)))
                    b.ln1.bias.copy_(t(next(it)))
                    for lin in linears(b):        # Keras's (d, heads, key_dim) kernels
                        w = next(it)
                        w = w.reshape(w.shape[0], -1) if lin is not b.o else \
                            w.reshape(-1, w.shape[-1])
                        lin.weight.copy_(t(w.T))
                        lin.bias.copy_(t(next(it).reshape(-1)))
                    b.ln2.weight.copy_(t(next(it)))
                    b.ln2.bias.copy_(t(next(it)))
                    for lin in (b.fc, b.proj):
                        lin.weight.copy_(t(next(it).T))
                        lin.bias.copy_(t(next(it)))
                self.ln_f.weight.copy_(t(next(it)))
                self.ln_f.bias.copy_(t(next(it)))
                self.head.weight.copy_(t(next(it).T))
                self.head.bias.copy_(t(next(it)))
    return GPT()


def torch_run(torch, case, model, x, y):
    """A callable running one epoch in PyTorch: the batches of ``x`` in order."""
    F = torch.nn.functional
    if case.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7, weight_decay=0.1)
    elif case.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy() if x.ndim == 4 else x)
    yt = torch.from_numpy(y)
    model.train()

    def run():
        for s in range(0, len(xt), case.batch):
            opt.zero_grad()
            out = model(xt[s:s + case.batch])
            if case.kind == "gpt":
                loss = F.cross_entropy(out.reshape(-1, out.shape[-1]),
                                       yt[s:s + case.batch].reshape(-1))
            else:
                loss = F.cross_entropy(out, yt[s:s + case.batch])
            loss.backward()
            opt.step()
    return run


# -- measuring ------------------------------------------------------------------------------
def scaled(case, scale):
    n = max(case.batch, int(round(case.samples * scale)))
    return Case(**{**case.__dict__, "samples": n})


def _epoch_fn(case, model, x, y):
    def run():
        model.fit(x, y, batch_size=case.batch, epochs=1, verbose=0, shuffle=False)
    return run


def peak_memory(run):
    """Peak bytes NumPy allocated during ``run()`` (tracemalloc; slows the run, untimed)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(case, threads=1, repeat=3, torch=None):
    """{'wsekern': s, 'torch': s or None, 'peak': bytes, 'steps': n}: best of ``repeat``
    interleaved runs of one epoch each."""
    x, y = case_data(case)
    model = wsekern_model(case)
    ours = _epoch_fn(case, model, x, y)
    theirs = None
    if torch is not None:
        vocab = model.config.vocab_size if case.kind == "gpt" else None
        tm = torch_model(torch, case, vocab)
        if case.kind == "gpt" and case.sparsity == 0:      # the same start (timing aside)
            tm.load_wsekern(model.get_weights())
        theirs = torch_run(torch, case, tm, x, y)
    times = {"wsekern": [], "torch": []}
    with limit_threads(threads):
        ours()                                               # warm-up (and builds)
        if theirs:
            theirs()
        for _ in range(repeat):
            for name, fn in (("wsekern", ours), ("torch", theirs)):
                if fn is None:
                    continue
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        # the sparse step's kept output buffers were allocated before tracing: dropped,
        # the traced run allocates (and counts) them again
        sparse_dense.release_buffers()
        peak = peak_memory(ours)
    steps = -(-len(x) // case.batch)
    return {"case": case.name, "wsekern": min(times["wsekern"]),
            "torch": min(times["torch"]) if times["torch"] else None, "peak": peak,
            "steps": steps, "samples": len(x)}


def select_cases(only, cases=CASES):
    """The cases whose name contains any of the strings ``only`` (case-insensitive); all of
    them when ``only`` is empty or None. A string that matches no case is refused, naming
    the cases there are."""
    if not only:
        return tuple(cases)
    only = [only] if isinstance(only, str) else list(only)
    for want in only:
        if not any(want.lower() in c.name.lower() for c in cases):
            names = "; ".join(c.name for c in cases)
            raise ValueError(f"--only {want!r} matches no training case; the cases are: {names}")
    return tuple(c for c in cases if any(w.lower() in c.name.lower() for w in only))


def bench_train(threads=1, scale=1.0, repeat=3, cases=CASES, out=print, only=None):
    """Print the training table; return its rows as dicts. ``only``: substrings of the case
    names to run (see :func:`select_cases`)."""
    if not scale > 0 or int(repeat) < 1:
        raise ValueError(f"scale must be > 0 and repeat >= 1; received scale={scale!r}, "
                         f"repeat={repeat!r}")
    cases = select_cases(only, cases)
    torch = _optional("torch")
    out(machine_line())
    out(f"training, {threads} thread(s), best of {repeat} interleaved runs, same batches "
        f"(no shuffle), scale {scale}; torch is dense; 'ratio' = wsekern time / torch time")
    out(f"{'case':<42} {'steps':>5} {'wsekern':>10} {'torch':>10} {'ratio':>6} "
        f"{'per step':>10} {'peak MB':>8}")
    rows = []
    for case in cases:
        case = scaled(case, scale)
        r = measure(case, threads, repeat, torch)
        per_step = r["wsekern"] / r["steps"]
        unit = f"{per_step * 1e6:8.0f}us" if per_step < 1e-2 else f"{per_step * 1e3:8.1f}ms"
        t_t = f"{r['torch']:9.3f}s" if r["torch"] else f"{'-':>10}"
        ratio = f"{r['wsekern'] / r['torch']:6.2f}" if r["torch"] else f"{'-':>6}"
        out(f"{case.name:<42} {r['steps']:5d} {r['wsekern']:9.3f}s {t_t} {ratio} {unit} "
            f"{r['peak'] / 2**20:8.1f}")
        rows.append(r)
    return rows

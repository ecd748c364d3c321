"""``WaferStrategy``: place a wsekern.nn model on the simulated wafer and cost every step.

The Keras-facing half: the scope, the walk over a model's layers, the hooks layers call
in a training step, the attention layers' shapes, the report. The machine half (the
per-layer fit, the balancing, the per-step cost of a product on a placement) is
``wsekern.wafer.training``, which knows nothing of layers.

Like a Keras distribution strategy: a model built inside ``strategy.scope()`` is placed
on the wafer when it is built, and each training step is costed from the real nonzero
counts of that batch (forward, input gradient, weight gradient and update).

Layer-pipelined (the whole model on the wafer) when every layer's weights, gradients,
optimizer state (Adam's m and v) and the activations kept for backward fit in SRAM: each
layer gets its own rectangle, side by side, sized so the slowest layer is as fast as the
wafer's columns allow; a step takes the slowest layer's time plus the pipeline's fill and
drain. Otherwise weight
streaming: one layer at a time on the whole wafer, X stationary, weights crossing the
external link three times (forward, backward, gradients out), the update off-wafer; a
step is the sum of its layers.
"""
import contextlib
import math
import threading
import time
import weakref

import numpy as np
import scipy.sparse as sps

from ..errors import SramOverflowError
from ..wafer import analytic, placement, training
from ..wafer.config import WaferConfig
from . import columns, placed
from .tensor import tap


class _Scopes(threading.local):
    """The strategies whose scope is open in this thread, innermost last: per thread, as
    Keras's distribution scope and tf.distribute's, so a model built in another thread
    meanwhile is not placed by them."""

    def __init__(self):
        self.stack = []


_SCOPES = _Scopes()
PLACEMENT_BATCH = 32     # the batch placement assumes: a model is placed when built, before fit


def _flushed(name, doc):
    """A public attribute of costing state that a reader sees with every step taken so far
    costed: reading it first costs the steps its strategy holds back (``_owner``: the
    strategy, or None when the object was not made by one); the value lives in ``_name``.
    A list or dict is read as a copy: one held on to would not show the steps its owner
    costs later, in a batch, when no reader asks (read it again to see them)."""
    private = "_" + name

    def get(self):
        owner = self._owner
        if owner is not None and owner._queue:
            owner._flush()
        value = getattr(self, private)
        return value.copy() if isinstance(value, (list, dict)) else value

    def set_(self, value):
        setattr(self, private, value)
    return property(get, set_, doc=doc)


def _handover_bytes(a):
    """The bytes a queued step keeps of one handed-over operand (its pattern, or the array)."""
    nz = getattr(a, "nz", None)
    if nz is None:
        nz = a
    return int(getattr(nz, "nbytes", 0))


def current_strategy():
    stack = _SCOPES.stack
    return stack[-1] if stack else None


class WaferStrategy:
    """Run models' training steps on the simulated wafer as well as on the CPU.

    A model built inside :meth:`scope` is placed on the wafer when it is built
    (layer-pipelined when everything fits in SRAM, else weight streaming); each training
    step is then costed from that batch's real nonzero counts, and
    ``model.wafer_report()`` summarises the steps.

    Several models built in one scope (a teacher and a student, a GAN's generator and
    discriminator, an encoder and a classifier made from it) are placed each on its own:
    each has the whole wafer (they train in turn, not at once), its own placement, steps,
    report and cycles, the same as if it were alone in the scope (:meth:`model_placement`
    gives them). A model's training step is costed on that model's placement, so a layer
    shared by two models (the encoder in the classifier) counts for the model being
    trained. A model that is a layer of another one of the scope (a Sequential inside a
    functional model) is that model's part, its layers placed once, with it; trained on
    its own later, it is placed on its own then. The strategy's ``steps``, ``samples``
    and ``cost_seconds`` are sums over its models; its per-model readers (``mode``,
    ``reason``, ``placements``, ``edges``, ``traced``, ``attention``, ``batch``,
    ``last_batch``, ``step_cycles``, ``attention_cycles``) read its one model, and
    raise naming the models when it holds several. It holds its models weakly, as a
    Keras distribution strategy holds none: a model no longer referenced elsewhere is
    let go with its placement (a loop reusing one strategy for many models does not
    grow), its steps kept in those sums; when the program drops its one model, the
    per-model readers go on reading that model's placement until another is placed.

    Parameters
    ----------
    config : WaferConfig, optional
        The machine (``WaferConfig.wse2()`` when None).
    mode : {None, "layer-pipelined", "weight-streaming"}
        None: layer-pipelined if the weights, gradients, optimizer state and saved
        activations fit in 80 % of the wafer's SRAM, else weight streaming.
    defer_steps : int, default 16
        Steps costed together. A step that follows its layers' existing plans (the same
        weight structure, region and batch as the last fully costed step, no placement to
        make again) is queued with its own operands and weight structure, taken at the
        step; the queue is costed in order once it holds ``defer_steps`` steps, so the
        costing and the training do not evict each other's data from the CPU's cache
        every step. The figures are those of costing each step when it is taken: every
        reader of the costing (``steps``, ``step_cycles``, ``cost_seconds``,
        :meth:`report`, a placement's totals and reports) costs the queue first, and so
        do the end of ``fit``, the exit of :meth:`scope` and a step that places again or
        starts a new plan (costed after the queue, when it is taken). 1: each step is
        costed when it is taken. (Each model has its own queue.)
    defer_bytes : int, default 16 MiB
        The queue is costed too once the operands it holds (each queued step's nonzero
        patterns) exceed this many bytes.

    Raises
    ------
    TypeError
        ``config`` is not a WaferConfig.
    ValueError
        An unknown mode; ``defer_steps`` not an int >= 1, ``defer_bytes`` not an int >= 0.

    Examples
    --------
    >>> import wsekern as wk
    >>> strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    >>> with strategy.scope():
    ...     model = wk.nn.Sequential([wk.nn.Input(shape=(8,)), wk.nn.layers.Dense(4)])
    >>> strategy.mode
    'layer-pipelined'
    """

    def __init__(self, config=None, mode=None, defer_steps=16, defer_bytes=16 * 2**20):
        for name, value, low in (("defer_steps", defer_steps, 1), ("defer_bytes", defer_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; received {value!r}")
        if config is None:
            config = WaferConfig.wse2()
        if not isinstance(config, WaferConfig):
            raise TypeError(f"config must be a WaferConfig; received {type(config).__name__}")
        if mode not in (None, "layer-pipelined", "weight-streaming"):
            raise ValueError(f"mode must be 'layer-pipelined', 'weight-streaming' or None (the "
                             f"strategy decides); received {mode!r}")
        self.config = config
        self.requested_mode = mode
        self.defer_steps, self.defer_bytes = int(defer_steps), int(defer_bytes)
        self._models = {}           # id(model) -> its ModelPlacement, in the order placed
        self._dropped = []          # the weak references of its models collected since
        # steps, samples and costing seconds of those, and of placements given up
        self._retired = (0, 0, 0.0)
        self._last = None           # the last one's placement, when it left no model held

    @contextlib.contextmanager
    def scope(self):
        """``with strategy.scope():`` - the models built inside, in this thread, are
        placed by this strategy (a scope is per thread, as Keras's)."""
        stack = _SCOPES.stack
        stack.append(self)
        try:
            yield self
        finally:
            stack.remove(self)
            self._flush()

    def _retire(self):
        """Let go of the models collected since the last call (their weak references'
        callback lists them: it runs wherever the collector does, so it only lists):
        each one's queued steps are costed, its steps, samples and costing time added
        to the strategy's, and its placements let go (its layers are freed with them) -
        but for the last model held, whose placement the per-model readers go on reading
        until another model is placed (when the program dropped its one model)."""
        while self._dropped:
            ref = self._dropped.pop()
            for key, m in list(self._models.items()):
                if m._model_ref is ref:
                    try:
                        m._flush()
                    finally:
                        del self._models[key]
                        self._keep_counts(m._steps, m._samples, m._cost_seconds)
                        if not self._models:
                            self._last = m

    def _keep_counts(self, steps, samples, seconds):
        """Add to the sums the counts of a placement let go (its model collected, or
        placed again for another batch)."""
        kept = self._retired
        self._retired = (kept[0] + steps, kept[1] + samples, kept[2] + seconds)

    def _hold(self, model):
        """A new ModelPlacement for ``model``, held until the model is collected."""
        got = self._models[id(model)] = ModelPlacement(self, model)
        self._last = None
        return got

    @property
    def models(self):
        """The models placed on their own, in the order placed (a new list)."""
        self._retire()
        held = (m.model for m in list(self._models.values()))     # each read once: a
        return [model for model in held if model is not None]      # gc pass may come between

    def model_placement(self, model):
        """``model``'s :class:`ModelPlacement` (its layers' placements, its steps and
        cycles), or None when this strategy has not placed it on its own."""
        self._retire()
        return self._models.get(id(model))

    def _model(self, model):
        """``model``'s ModelPlacement (a training step of ``model`` hands its layers'
        operands to it: ``placed.stepping``), made (and the model placed, when built) if it
        has none: a model first trained after its build was left to another model of the
        scope (it was that model's part), or built lazily, by its first batch."""
        if self._dropped:
            self._retire()
        got = self._models.get(id(model))
        if got is None:
            got = self._hold(model)
            if model.built:
                got.place(model)
        return got

    # -- what a model calls --------------------------------------------------------
    def place(self, model, batch=None, samples=None):
        """Place ``model`` for ``batch`` samples per step (:meth:`ModelPlacement.place`).

        Placed when built (``batch=None``), a model that is a layer of a model this
        strategy holds is left to it: its layers are placed with it. Placing a model
        gives up the placements of the models inside it that have no step of their own
        (a Sequential built, then used as a layer of this one)."""
        self._retire()
        own = self._models.get(id(model))
        if own is None:
            held = (m.model for m in list(self._models.values()))     # each read once
            if batch is None and any(layer is model for other in held if other is not None
                                     for layer in _leaves(other.layers)):
                return
            own = self._hold(model)
        own.place(model, batch, samples)
        parts = {id(layer) for layer in _leaves(model.layers)}
        for key, m in list(self._models.items()):
            if key in parts and key != id(model) and not m._steps and not m._queue:
                del self._models[key]

    def fit_begins(self, model, batch=None, samples=None):
        """``Model.fit`` calls this before its first step (:meth:`ModelPlacement.fit_begins`)."""
        self._model(model).fit_begins(model, batch, samples)

    def fit_ends(self, model):
        """``Model.fit`` calls this when it returns or raises."""
        self._model(model).fit_ends()

    def record_step(self, model, batch_size):
        """Cost (or queue) the step ``model`` just took (:meth:`ModelPlacement.record_step`)."""
        self._model(model).record_step(model, batch_size)

    def report(self, model):
        """``model``'s WaferReport: its own placement and steps (a model left to the model
        it is a part of, never trained on its own, reports its placement alone)."""
        self._retire()
        own = self._models.get(id(model))
        if own is not None:
            return own.report(model)
        with placed.kept(list(_leaves(model.layers))):      # placed for this report alone
            own = ModelPlacement(self, model)
            if model.built:
                own.place(model)
            return own.report(model)

    # -- readers -------------------------------------------------------------------
    def _flush(self):
        self._retire()
        for m in list(self._models.values()):
            m._flush()

    def _cost_clock(self):
        """Every model's costing clock summed (:meth:`ModelPlacement._cost_clock`): a timer
        around one model's steps subtracts whatever costing ran inside it."""
        if self._dropped:
            self._retire()
        # a copy: another thread may place or let go of a model of this strategy meanwhile
        return self._retired[2] + sum(m._cost_seconds for m in list(self._models.values()))

    @property
    def steps(self):
        """The steps costed, summed over the models (each model's queue costed first),
        those of models let go and of placements given up (a model placed again for
        another batch) included."""
        self._retire()
        return self._retired[0] + sum(m.steps for m in list(self._models.values()))

    @property
    def samples(self):
        """The samples of the steps costed, summed over the models."""
        self._retire()
        return self._retired[1] + sum(m.samples for m in list(self._models.values()))

    @property
    def cost_seconds(self):
        """Wall time spent costing (and queueing) steps, summed over the models, kept out
        of the CPU timings."""
        self._retire()
        return self._retired[2] + sum(m.cost_seconds for m in list(self._models.values()))

    def _only(self, name):
        """``name`` of the one model placed (a model not placed yet: the value before
        placing); with several, an error naming them."""
        self._retire()
        held = list(self._models.values()) or ([self._last] if self._last else [])
        if len(held) > 1:
            names = ", ".join(repr(m._model_name) for m in held)
            raise ValueError(
                f"strategy.{name} is one model's, and this strategy placed {len(held)} models "
                f"({names}): read model.wafer_report(), or "
                f"strategy.model_placement(model).{name}")
        return getattr(held[0] if held else ModelPlacement(self, None), name)


def _per_model(name):
    return property(lambda self: self._only(name),
                    doc=f"The one model's ``{name}`` (see :class:`ModelPlacement`).")


for _name in ("mode", "reason", "placements", "open_length", "attention", "edges", "traced",
              "batch", "last_batch", "step_cycles", "attention_cycles"):
    setattr(WaferStrategy, _name, _per_model(_name))
del _name


class ModelPlacement:
    """One model's placement on a WaferStrategy's wafer and the costing of its steps: its
    layers' rectangles (``placements``), the mode, the fabric links between regions, and
    each step's cycles. Made by the strategy (``strategy.model_placement(model)``)."""

    def __init__(self, strategy, model):
        self.strategy = strategy
        # weak: the strategy lets the model go (WaferStrategy._retire) once it is collected
        self._model_ref = None if model is None else weakref.ref(model, strategy._dropped.append)
        self._model_name = None if model is None else model.name      # for messages
        self.config = strategy.config
        self.requested_mode = strategy.requested_mode
        self.mode = None
        self.reason = ""
        self.placements = []        # one per costed layer
        self.open_length = []       # those whose input has a dimension unknown at build
        self.attention = []         # the attention layers, costed on their query's PEs
        self.edges = []             # FabricLinks between placements (a traced graph)
        self.traced = False
        self.defer_steps, self.defer_bytes = strategy.defer_steps, strategy.defer_bytes
        self._owner = self            # its own readers cost the queue first (_flushed)
        self._queue = []              # steps taken, not costed yet: see _take
        self._queue_bytes = 0
        self._flushing = False
        self._steps = 0
        self._samples = 0
        self._step_cycles = []
        self._cost_seconds = 0.0      # wall time spent costing, kept out of CPU timings
        self._attention_cycles = {}   # attention layer -> its costed cycles, summed
        self.batch = None             # the batch the placement was made for
        self.last_batch = None        # an epoch's last, shorter batch (fit tells it)
        self._check_batch = False     # fit began: its first step's batch is fit's batch
        self._by_layer = (None, {})   # (placements, {id(layer): its placement}): see below

    @property
    def model(self):
        """The model placed (None once it is collected)."""
        ref = self._model_ref
        return None if ref is None else ref()

    steps = _flushed("steps", "The steps costed (every step taken: the queue is costed first).")
    samples = _flushed("samples", "The samples of the steps costed.")
    step_cycles = _flushed("step_cycles", "Each costed step's cycles, in order (a copy).")
    cost_seconds = _flushed("cost_seconds", "Wall time spent costing (and queueing) steps, "
                            "kept out of the CPU timings.")
    attention_cycles = _flushed("attention_cycles",
                                "Attention layer -> its costed cycles, summed over the steps "
                                "(a copy).")

    def placement_for(self, layer):
        """``layer``'s LayerPlacement in this model's placement, or None."""
        by_layer = self._by_layer
        if by_layer[0] is not self.placements:
            by_layer = self._by_layer = (self.placements,
                                         {id(p.layer): p for p in self.placements})
        return by_layer[1].get(id(layer))

    def _cost_clock(self):
        """The wall time spent costing so far, the queue left as it is: a timer around
        training steps subtracts the difference of two readings (the queue's costing adds
        its time when it runs, inside the timer of the step that runs it, or outside when a
        reader runs it). Reading ``cost_seconds`` there instead would cost the queue at
        every step (train_on_batch would queue nothing), or add a reader's costing to a
        timer it ran outside of."""
        return self._cost_seconds

    # -- placement ------------------------------------------------------------
    def place(self, model, batch=None, samples=None):
        """Choose the mode and each layer's rectangle for ``batch`` samples per step; raise
        SramOverflowError if even weight streaming cannot hold one layer's activations (or,
        with ``mode='layer-pipelined'``, when some layer fits no rectangle).

        ``samples``: the samples of an epoch (``Model.fit`` tells it, see
        :meth:`fit_begins`): the step of its last, shorter batch (``samples % batch``) is
        then worked out here too, as the placed batch's is, not in the epoch.

        ``batch=None`` (a model placed when it is built) guesses PLACEMENT_BATCH samples:
        a requested layer-pipelined placement that fails for the guess is left to the
        first training step, which places for the batch it really has (and raises then,
        if that fails too); ``strategy.mode`` is None until then. (A model that cannot
        even stream its weights at the guess raises at once.)"""
        if samples is not None and (isinstance(samples, bool)
                                    or not isinstance(samples, (int, np.integer)) or samples < 0):
            raise ValueError(f"samples must be a count of samples (an int >= 0); "
                             f"received {samples!r}")
        self._flush()           # the steps taken so far are costed on the placement they had
        if batch is None:
            try:
                self._place(model, PLACEMENT_BATCH)
            except SramOverflowError as e:
                if self.requested_mode != "layer-pipelined":
                    raise
                self.mode, self.reason = None, (f"not placed yet: at the guessed batch of "
                                                f"{PLACEMENT_BATCH}, {e}")
                self.batch = None       # the first step places for its own batch
            return
        if samples is not None:
            self.last_batch = _last_batch(batch, samples)
        self._place(model, batch)

    def _place(self, model, batch):
        cfg = self.config
        self.batch = int(batch)
        leaves = list(_leaves(model.layers))
        layers = [l for l in leaves if _matrix_shape(l) is not None]
        self.placements = [LayerPlacement(l) for l in layers]
        for p in self.placements:
            p._owner = self
        self.open_length = [p for p in self.placements if None in p.layer.input_shape[1:-1]]
        self.edges, self.traced = [], getattr(model, "dataflow_graph", None) is not None
        self.attention = [l for l in leaves if hasattr(l, "last_attention")]
        if not layers:
            self.mode, self.reason = "layer-pipelined", "no layer with weights"
            return
        # each layer streams its own columns: batch x (OH*OW for a conv, T for a Dense on
        # (B, T, d)), and is sized for them
        need = sum(training.training_bytes(p.weight_matrix(), cfg, p.columns(batch))
                   for p in self.placements)
        capacity = cfg.rows * cfg.cols * cfg.data_bytes
        fits = need <= 0.8 * capacity     # the rest for FIFOs, accumulators, fragmentation
        stream = self.requested_mode == "weight-streaming" or (self.requested_mode is None
                                                                and not fits)
        reason = (f"weights, gradients, Adam state and saved activations need "
                  f"{need / 2**20:,.1f} MiB; the wafer holds {capacity / 2**20:,.1f} MiB"
                  if not fits else "requested")
        if not stream:
            stats = [p.stats() for p in self.placements]          # (of W, of W.T, W)
            try:
                regions = training.balance([(p.layer.name, s[2], s[0])
                                            for p, s in zip(self.placements, stats)], cfg,
                                           [p.columns(batch) for p in self.placements])
            except SramOverflowError as e:
                if self.requested_mode is not None:
                    raise
                # the cause, without the advice to stream (taken here already)
                stream, reason = True, f"no layer-pipelined placement: {str(e).split(';')[0]}"
        if stream:
            self.mode, self.reason = "weight-streaming", reason
            for p in self.placements:
                p.region = (0, 0, cfg.rows, cfg.cols)
                p.mapping = "activation-stationary"
            for p in self.placements:      # every region set before one may fail
                training.check_streaming_fits(cfg, p.layer.name, p.shape[1], p.columns(batch))
            self._prepare((batch, self.last_batch))
            return
        self.mode = "layer-pipelined"
        self.reason = (f"everything fits: {need / 2**20:,.2f} MiB of "
                       f"{capacity / 2**20:,.1f} MiB of SRAM")
        for p, region in zip(self.placements, regions):
            p.region, p.mapping = region, "weight-stationary"
        self._prepare((batch, self.last_batch))
        self.edges, self.traced = _dataflow_edges(model, self.placements)
        for e in self.edges:
            e._owner = self

    def _prepare(self, batches):
        """Work out once, not per step, what a step of each of ``batches`` samples reads of
        the layers' structure on their regions (None: no such batch): the placed batch's,
        and an epoch's last, shorter one's (kept beside it, so neither is made again)."""
        cfg = self.config
        for batch in dict.fromkeys(b for b in batches if b):
            for p in self.placements:
                s, s_t, W = p.stats()
                if self.mode == "weight-streaming":
                    training.prepare_streaming(cfg, p.region, s, s_t, p.columns(batch))
                else:
                    training.prepare_step(cfg, self.mode, p.region, W, s, s_t,
                                          p.columns(batch))

    def fit_begins(self, model, batch=None, samples=None):
        """``Model.fit`` calls this before its first step. That step's batch is the one fit
        uses (the last batch of an epoch may be smaller), and the placement depends on it
        (what fits in SRAM, each layer's rectangle): a model placed for another batch when
        it was built is placed again for this one before the step is costed, and the
        report starts afresh (its steps ran on the new placement). ``train_on_batch``
        keeps the placement it finds; ``place(model, batch)`` makes one explicitly.

        ``batch`` and ``samples`` (fit's batch size and the samples of an epoch, where
        known before it runs): the step of the epoch's last, shorter batch is worked out
        with the placement (now, when the model is placed for ``batch`` already), not
        in the epoch."""
        self._flush()
        self._check_batch = True
        if batch is None or samples is None:
            self.last_batch = None      # an epoch of unknown length: nothing to prepare
            return
        last = _last_batch(batch, samples)
        if last != self.last_batch:
            self.last_batch = last
            if self.batch == batch and self.mode is not None and last is not None:
                try:
                    self._prepare((last,))
                except SramOverflowError:
                    pass        # the step that has this batch raises it, as it would have

    def fit_ends(self):
        """``Model.fit`` calls this when it returns or raises: a fit that ran no step leaves
        the placement to ``train_on_batch`` as it found it; the steps it queued are costed."""
        self._check_batch = False
        self._flush()

    _PLACEMENT_STATE = ("batch", "placements", "edges", "traced", "attention", "mode", "reason")

    def _place_again(self, model, batch, keep_history=False):
        """Place ``model`` for ``batch``, keeping the step its layers just recorded; if the
        new placement fails, the old one stays whole. The report starts afresh, or with
        ``keep_history`` goes on from the steps costed so far (on the old placement)."""
        self._flush()
        recorded = {id(p.layer): p for p in self.placements}
        saved = {k: getattr(self, k) for k in self._PLACEMENT_STATE if hasattr(self, k)}
        try:
            self.place(model, batch)
        except BaseException:
            for k, v in saved.items():
                setattr(self, k, v)
            for p in self.placements:        # the layers hand their steps to these again
                placed.place(p.layer, p)
            raise
        for p in self.placements:
            old = recorded.get(id(p.layer))
            if old is not None:
                p.last_input, p.last_grad = old.last_input, old.last_grad
                p.needs_input_grad = old.needs_input_grad
                if keep_history:
                    p.carry_history(old)
        if keep_history:
            links = {(id(e.src.layer), id(e.dst.layer)): e for e in saved.get("edges", [])}
            for e in self.edges:
                old = links.get((id(e.src.layer), id(e.dst.layer)))
                if old is not None:
                    e._totals, e._steps = dict(old._totals), old._steps
            return
        self.strategy._keep_counts(self._steps, self._samples, 0.0)   # its cost_seconds go on
        self._steps = self._samples = 0
        self._step_cycles, self._attention_cycles = [], {}

    # -- per-step costing ----------------------------------------------------
    def record_step(self, model, batch_size):
        """Cost the step just taken from each layer's recorded input and output gradient,
        or queue it (see ``defer_steps``): a step that follows every layer's plan is costed
        later, in order, with what it handed over now."""
        start = time.perf_counter()
        if self.defer_steps > 1 and not self._flushing:
            entry = self._take(batch_size)
            if entry is not None:
                self._queue.append(entry)
                self._queue_bytes += entry[3]
                self._cost_seconds += time.perf_counter() - start
                if len(self._queue) >= self.defer_steps or self._queue_bytes > self.defer_bytes:
                    self._flush()
                return
        if self._queue:         # the steps before this one first, in order
            self._cost_seconds += time.perf_counter() - start
            self._flush()
            start = time.perf_counter()
        if self._check_batch:
            self._check_batch = False
            # a dimension unknown at build time (None) is sized as 1 until the data comes:
            # fit's first step shows what each layer really streams per sample
            seen = {p: p.last_input.shape[1] // batch_size for p in self.placements
                    if p.last_input is not None and batch_size > 0}
            unsized = {p: n for p, n in seen.items() if n != p.columns_per_sample}
            for p, n in unsized.items():
                p.layer._columns_seen = n
            if self.placements and (self.batch != batch_size or unsized):
                self._place_again(model, batch_size)
        elif self.placements and self.batch is None:     # the build's guess did not place
            self._place_again(model, batch_size)
        elif self.open_length:
            self._hold_longer_steps(model, batch_size)
        self._cost(batch_size, start)

    def _take(self, batch_size):
        """The step just taken as a queue entry (batch, [(placement, input, gradient,
        needs_input_grad, stats)], [(attention layer, its shape)], bytes, every placement's
        needs_input_grad), its operands
        taken off the layers as costing them would; or None where it must be costed now:
        fit's first step, a placement still to make or to make again (a longer sequence),
        a layer whose step does not follow its plan (a new W structure (``stats()`` runs
        now, on the weights after this step's update), region, batch or
        needs_input_grad: its costing makes a new plan and may raise), or no layer
        handed a step over. A planned step's costing reads only the plan and the
        operands: it raises nothing that the plan's first, eager step did not."""
        if self._check_batch or not self.placements or self.batch is None:
            return None
        if self.open_length and self._longer(batch_size):
            return None
        cfg, mode = self.config, self.mode
        ops, nbytes = [], 0
        for p in self.placements:
            x, g = p.last_input, p.last_grad
            if x is None or g is None:
                continue
            stats = p.stats()
            N = int(x.shape[1])
            if not p.follows_plan(cfg, mode, stats[2], N) or int(g.shape[1]) != N:
                return None     # (a gradient of other columns: its costing raises, now)
            if isinstance(x, np.ndarray) or isinstance(g, np.ndarray):
                return None     # an array not taken as a pattern may be the layer's own
            ops.append((p, x, g, p.needs_input_grad, stats))
            nbytes += _handover_bytes(x) + _handover_bytes(g)
        if not ops:
            return None
        for p, *_ in ops:
            p.last_input = p.last_grad = None
        attention = []
        for mha in self.attention:
            attention.append((mha, mha.last_attention))
            mha.last_attention = None
        # every layer's, not only those costed: a link into a layer that handed no step
        # over reads it, and a later step's forward sets it
        needs = [p.needs_input_grad for p in self.placements]
        return batch_size, ops, attention, nbytes, needs

    def _flush(self):
        """Cost the queued steps, in order, each with what it handed over; the layers'
        operands of a step not yet recorded are left as they were."""
        if self._flushing or not self._queue:
            return
        self._flushing = True
        live = [(p, p.last_input, p.last_grad, p.needs_input_grad) for p in self.placements]
        live_attention = [(mha, mha.last_attention) for mha in self.attention]
        # taken off the strategy while costed (a reader inside, such as a link reading its
        # layers' figures, finds no queue to cost); what a failure leaves goes back
        queue, self._queue = self._queue, []
        queue.reverse()
        placements = self.placements
        try:
            start = time.perf_counter()
            figures = self._queued_figures(queue)
            self._cost_seconds += time.perf_counter() - start
            while queue:
                start = time.perf_counter()
                batch_size, ops, attention, nbytes, needs = queue.pop()
                self._queue_bytes -= nbytes
                if len(ops) < len(placements):      # else every one is set just below
                    for p, n in zip(placements, needs):
                        p.last_input = p.last_grad = None
                        p.needs_input_grad = n
                for p, x, g, needs, stats in ops:
                    p.last_input, p.last_grad, p.needs_input_grad = x, g, needs
                    p._step_stats = stats
                    if figures is not None:
                        p._step_figures = next(figures[p])
                for mha, shape in attention:
                    mha.last_attention = shape
                self._cost(batch_size, start)
        finally:
            if queue:               # a step that raised: the ones after it stay queued
                queue.reverse()
                self._queue[:0] = queue
            for p, x, g, needs in live:
                p.last_input, p.last_grad, p.needs_input_grad = x, g, needs
                p._step_stats = p._step_figures = None
            for mha, shape in live_attention:
                mha.last_attention = shape
            self._flushing = False

    def _queued_figures(self, queue):
        """{placement: iterator of its figures for its steps of ``queue`` (reversed: the
        last is costed first), in order}, each layer's steps timed together
        (LayerPlacement.queued_figures); None where they are costed one by one instead
        (a lone step: the same work, less bookkeeping; attention layers; a layer whose
        steps do not follow a layer-pipelined plan). Changes nothing of what it reads."""
        if len(queue) < 2 or self.attention:
            return None
        steps = {}
        for _, ops, _, _, _ in reversed(queue):
            for p, x, g, needs, stats in ops:
                steps.setdefault(p, []).append((x, g, needs, stats))
        cfg, mode = self.config, self.mode
        figures = {}
        try:
            for p, taken in steps.items():
                got = p.queued_figures(cfg, mode, taken)
                if got is None:
                    return None
                figures[p] = iter(got)
        except Exception:       # costed one by one, the step at fault raises as it would
            return None
        return figures

    def _cost(self, batch_size, start):
        """Cost the step whose operands the placements hold (the placement already made)."""
        per_layer = []
        for p in self.placements:
            if p.last_input is None or p.last_grad is None:
                continue
            per_layer.append(p.cost_step(self.config, self.mode))
        if not per_layer:
            return
        if self.attention:
            per_layer.extend(self._attention_costs())
        # each layer's and link's step: (total cycles, latency)
        if self.mode == "layer-pipelined" and self.traced:
            # a dataflow graph: the slowest node or link sets the rate; the fill is the
            # longest path (parallel branches overlap), links adding their hops
            cfg = self.config
            stage = max([c[0] for c in per_layer] + [e.cost_step(cfg)[0] for e in self.edges])
            cycles = stage + self._longest_path()
        elif self.mode == "layer-pipelined":
            stage = max(c[0] for c in per_layer)
            fill = sum(c[1] for c in per_layer)
            cycles = stage + fill
        else:
            cycles = sum(c[0] for c in per_layer)
        self._step_cycles.append(cycles)
        self._steps += 1
        self._samples += batch_size
        self._cost_seconds += time.perf_counter() - start

    def _hold_longer_steps(self, model, batch_size):
        """Place again, keeping the report's steps so far, when this step streamed more
        columns per sample through some layer than its placement was sized for (a longer
        sequence, where the length is unknown (None) until the data comes): its SRAM (the
        saved activations, the weight gradient's rows) was sized for shorter ones. The
        placement then holds the longest sequence seen at the placed batch; shorter ones
        are costed on it as they come. (A larger batch given to train_on_batch keeps the
        placement: see :meth:`fit_begins`.)"""
        longer = self._longer(batch_size)
        if not longer:
            return
        for p, n in longer.items():
            p.layer._columns_seen = n
        self._place_again(model, self.batch, keep_history=True)

    def _longer(self, batch_size):
        """{placement: columns per sample} of the open-length layers this step streamed
        more columns per sample through than they were placed for (empty: none)."""
        if batch_size <= 0 or not self.open_length:
            return {}
        longer = {p: -(-p.last_input.shape[1] // batch_size) for p in self.open_length
                  if p.last_input is not None}
        return {p: n for p, n in longer.items() if n > p.columns_per_sample}

    def _longest_path(self):
        """The fill: the longest chain of node latencies and link hops through the graph
        (placements are in topological order)."""
        # each placement's incoming links, worked out once per placement (place makes
        # new lists of placements and edges)
        graph = getattr(self, "_graph", None)
        if graph is None or graph[0] is not self.edges or graph[1] is not self.placements \
                or graph[2] != len(self.edges) or graph[3] != len(self.placements):
            graph = self._graph = _fill_graph(self.edges, self.placements)
        # arrive[i]: when placement i's last step is through (a link's source not among
        # the placements reads the last entry, 0.0)
        arrive = [0.0] * (len(self.placements) + 1)
        for i, p, into in graph[4]:
            start = max([arrive[j] + e._last_latency for j, e in into], default=0.0)
            arrive[i] = start + p._last_latency
        return max(arrive[:-1], default=0.0)

    def _attention_costs(self):
        """The attention products and softmax of each attention layer's last step, on the
        PEs of its query projection (training.attention_step)."""
        costs = []
        if not self.attention:
            return costs
        by_layer = {p.layer: p for p in self.placements}
        for mha in self.attention:
            shape, mha.last_attention = mha.last_attention, None
            place = by_layer.get(getattr(mha, "query_dense", None))
            if shape is None or place is None:
                continue
            cycles = training.attention_step(self.config, shape,
                                             place.region[2] * place.region[3])
            self._attention_cycles[mha] = self._attention_cycles.get(mha, 0.0) + cycles
            costs.append((cycles, 0.0))
        return costs

    def report(self, model):
        self._flush()
        return WaferReport(self, model)


# the products of a step, in the order training.planned_steps gives their cycles
_PRODUCTS = ("forward", "input-gradient", "weight-gradient", "update")


def _last_batch(batch, samples):
    """The size of an epoch's last batch where it is shorter than ``batch``, else None."""
    batch, samples = int(batch), int(samples)
    last = samples % batch if batch > 0 else 0
    return last or None


def _leaves(layers):
    """Every layer, with composite ones (attention, transformer blocks, a model used as a
    layer of another) opened up."""
    for layer in layers:
        yield layer
        if hasattr(layer, "layers") and callable(getattr(layer, "compile", None)):   # a Model
            yield from _leaves(layer.layers)
        elif hasattr(layer, "sublayers") and layer.built:
            yield from _leaves(layer.sublayers)


def _columns_per_sample(layer):
    """The activation columns one sample streams through a layer's matrix: OH*OW for a
    Conv2D (its im2col), the product of the middle dimensions for a Dense on (B, ..., d)
    (T for (B, T, d); 1 on (B, d)). A dimension not known until the data comes (None)
    counts as 1, until fit's first step has shown the count (``record_step``)."""
    from .layers import Conv2D
    if None in layer.input_shape[1:-1] and getattr(layer, "_columns_seen", None):
        return layer._columns_seen
    if isinstance(layer, Conv2D):
        middle = layer.compute_output_shape(layer.input_shape)[1:-1] \
            if None not in layer.input_shape[1:3] else ()
    else:
        middle = layer.input_shape[1:-1]
    return math.prod(int(d) for d in middle if d is not None)


def _matrix_shape(layer):
    """(M, K) of the matrix a layer multiplies by (output units x inputs), or None."""
    from .layers import Conv2D, Dense
    if isinstance(layer, Dense) and layer.built:
        return (layer.units, layer.input_shape[-1])
    if isinstance(layer, Conv2D) and layer.built:
        kh, kw, cin_g, out = layer.kernel.shape
        return (out, cin_g * kh * kw * layer.groups)
    return None


class LayerPlacement:
    """One layer's rectangle, mapping, and the costs of its steps."""

    totals = _flushed("totals", "Cycles per part, summed over the costed steps (a copy).")
    sram_peak = _flushed("sram_peak", "The most SRAM a costed step used on one PE (bytes).")
    activation_zeros = _flushed("activation_zeros",
                                "The fraction of zero inputs, summed over the costed steps.")
    costed_steps = _flushed("costed_steps", "The steps costed.")
    columns_max = _flushed("columns_max", "The most activation columns a costed step streamed.")
    last_columns = _flushed("last_columns", "The activation columns the last step streamed.")
    last_latency = _flushed("last_latency", "The last step's latency (cycles).")
    last_input_nnz = _flushed("last_input_nnz", "The last step's nonzero inputs.")
    last_input_size = _flushed("last_input_size", "The last step's inputs.")
    last_output_size = _flushed("last_output_size", "The last step's outputs.")

    def __init__(self, layer):
        self._owner = None              # the strategy that placed it (costs its queue)
        self._step_stats = None         # a queued step's stats(), taken at the step
        self._step_figures = None       # ... and its figures, timed with its flush's steps
        self.layer = layer
        self.shape = _matrix_shape(layer)
        self.columns_per_sample = _columns_per_sample(layer)
        self.region = None
        self.mapping = None
        self.last_input = None
        self.last_grad = None
        self.needs_input_grad = True     # False for the first layer: nobody needs dX there
        self._totals = {"forward": 0.0, "input-gradient": 0.0, "weight-gradient": 0.0,
                       "update": 0.0}
        self._reports = {}
        self._pending = None            # the last step's arguments while its reports are unread
        self._primed = None             # what the last step fully costed: (W, region, ...)
        self._plan = None               # its training.step_plan: the steps after it
        self._sram_peak = 0
        self._activation_zeros = 0.0     # summed over costed steps: fraction of zero inputs
        self._costed_steps = 0
        self._last_input_nnz = self._last_input_size = self._last_output_size = 0
        self._last_columns = 0            # activation columns the last costed step streamed
        self._columns_max = 0             # ... and the most any costed step streamed
        self._last_latency = 0.0
        self._stats = None
        self._stats_key = None
        self._W = self._w_key = None
        placed.place(layer, self)

    def observe(self, operand, input_requires_grad, y, grad_rows):
        """Called by the layer in a training step: its input as (K x samples) columns,
        and ``y`` returned unchanged but for a tap that records ``grad_rows(dY)``, the
        output gradient as (M x samples) rows, in the backward pass. ``y`` must be the
        layer's op's fresh output, held by no one else yet: the tap hooks its backward in
        place (nn.tensor.tap), so a shared tensor would hand over every consumer's sum."""
        # a float array's pattern and count are taken now, from values still in the cache
        self.last_input = columns.taken(operand)
        self.needs_input_grad = input_requires_grad
        return tap(y, lambda g: setattr(self, "last_grad", columns.taken(grad_rows(g))))

    def carry_history(self, old):
        """Go on from ``old``'s costed steps (this layer placed again mid-training)."""
        self._totals = dict(old._totals)
        self._costed_steps, self._activation_zeros = old._costed_steps, old._activation_zeros
        self._sram_peak, self._columns_max = old._sram_peak, old._columns_max

    def columns(self, batch):
        """The activation columns a step of ``batch`` samples streams through W."""
        return batch * self.columns_per_sample

    # -- structure ---------------------------------------------------------------
    def weight_matrix(self):
        """W (M x K) as a scipy CSR: the layer's kept weights, output units as rows. The
        cost models read only its structure, so it is rebuilt only when that changes (a
        new pattern, a weight that became or stopped being zero)."""
        layer = self.layer
        pattern = getattr(layer, "pattern", None)
        if pattern is not None:
            if self._w_key is not pattern:
                self._W, self._w_key = sps.csr_array(pattern.to_scipy().T), pattern
            return self._W
        kernel = getattr(layer, "kernel", None)
        w = kernel.data if kernel is not None else layer.get_weights()[0]
        # all nonzero (the usual dense layer) is checked in one pass, without a mask
        key = (w.shape, None) if not analytic.has_zero(w) else (w.shape, w != 0)
        old = self._w_key
        if not (isinstance(old, tuple) and old[0] == key[0]
                and (old[1] is None) == (key[1] is None)
                and (key[1] is None or np.array_equal(old[1], key[1]))):
            self._W, self._w_key = _weight_csr(w, getattr(layer, "groups", 1)), key
        return self._W

    def stats(self):
        """(WeightStats of W, of W.T, W), recomputed only when W's structure changes."""
        W = self.weight_matrix()
        if self._stats is None or self._stats_key is not W:
            self._stats = (placement.WeightStats(W), placement.WeightStats(W.T))
            self._stats_key = W
        return self._stats + (W,)

    # -- costing a step ------------------------------------------------------------
    @property
    def reports(self):
        """The last step's report per product (forward, input-gradient, weight-gradient),
        each built when first read from the nonzero patterns that step kept."""
        owner = self._owner
        if owner is not None and owner._queue:
            owner._flush()
        if self._pending is not None:
            fixed = training.planned_reports(self._plan, *self._pending[6:8])
            self._reports = fixed if fixed is not None else \
                training.step_reports(*self._pending)
            self._pending = None
        return self._reports

    def forward_figures(self):
        """(MACs performed, dense MACs, bottleneck) of the last step's forward report, or
        None before a step: a step not yet reported gives them without that report (its
        per-PE maps of the whole wafer); else they are read from the report."""
        owner = self._owner
        if owner is not None and owner._queue:
            owner._flush()
        if self._pending is not None:
            figures = training.planned_forward(self._plan)
            if figures is None:         # layer-pipelined: from the kept patterns
                figures = training.step_forward_figures(self._plan, *self._pending)
            if figures is not None:
                return figures
        fwd = self.reports.get("forward")
        return (fwd.macs_performed, fwd.macs_dense, fwd.bottleneck) if fwd else None

    @property
    def last_useful(self):
        """The last step's forward MACs with both operands nonzero."""
        return self.reports["forward"].macs_useful

    def follows_plan(self, cfg, mode, W, N):
        """Whether a step of N columns on W (by identity) follows the plan of the last fully
        costed step: the same W structure, config, mode, region, N and needs_input_grad."""
        # compared entry by entry as tuples compare, but W by identity, the likeliest to
        # differ first
        primed = self._primed
        return (self._plan is not None and primed is not None and primed[3] is W
                and primed[4] == N and primed[0] == id(cfg) and primed[1] == mode
                and primed[5] == self.needs_input_grad and primed[2] == tuple(self.region))

    def cost_step(self, cfg, mode):
        if self._step_figures is not None:      # a queued step's, timed with its flush's
            figures = self._step_figures
            self._step_figures = self._step_stats = self.last_input = self.last_grad = None
            return self._count_queued(figures)
        got = self._step_stats          # a queued step's, taken at its step
        if got is None:
            got = self.stats()
        else:
            self._step_stats = None
        stats, stats_t, W = got
        # the step's operands as the layer handed them (arrays, or nn.columns' views of
        # the layer's own tensors): (K, B) input, features as rows; (M, B) the gradient of
        # the output; only their nonzeros are read
        x, g = self.last_input, self.last_grad
        self.last_input = self.last_grad = None
        N = int(x.shape[1])
        needs = self.needs_input_grad
        # the key of the last fully costed step compared entry by entry (follows_plan); a
        # new key is built only when it differs
        planned = self.follows_plan(cfg, mode, W, N)
        key = None if planned else (id(cfg), mode, tuple(self.region), W, N, needs)
        if mode != "layer-pipelined" and N:
            # weight streaming: every product's time reads W's structure and N, not the
            # operands (training.step_plan's "fixed" plan); the reports, built when read,
            # count the useful MACs from each row's nonzeros, so only those are kept
            x_rows, g_rows = columns.row_counts(x), columns.row_counts(g)
            if not planned:
                self._plan = training.step_plan(cfg, mode, self.region, W, stats, stats_t,
                                                N, self.needs_input_grad)
                self._primed = key
                self._sram_peak = max(self._sram_peak, self._plan["sram"])
            parts, latency = dict(self._plan["parts"]), self._plan["latency"]
            self._pending = (cfg, mode, self.region, W, stats, stats_t, x_rows, g_rows,
                             self.needs_input_grad)
            x_nnz = int(x_rows.sum())
        else:
            # the patterns, with their counts where they come with them (one pass over
            # a float operand); G's is read by a dense plan alone, which counts it if not
            (x_nz, x_nnz), (g_nz, g_nnz) = columns.pattern_nnz(x), columns.pattern_nnz(g)
            if x_nnz is None:
                x_nnz = int(np.count_nonzero(x_nz))
            args = (cfg, mode, self.region, W, stats, stats_t, x_nz, g_nz,
                    self.needs_input_grad)
            # a step like the last fully costed one (same W structure, region, batch size)
            # follows its plan (training.step_plan: only what the batch changes is
            # costed); its reports wait until read
            if planned:
                parts, latency, sram = training.planned_step(self._plan, x_nz, g_nz,
                                                             nnz=(x_nnz, g_nnz))
                self._pending = args
                if sram is not None:
                    self._sram_peak = max(self._sram_peak, sram)
            else:
                # a new plan (same W structure, region, batch size from now on): its first
                # step follows it too (the same floats), its reports wait until read
                plan = first = None
                try:
                    plan = training.step_plan(*args[:6], N, self.needs_input_grad)
                    if plan is not None and plan["kind"] in ("sparse", "dense"):
                        first = training.planned_step(plan, x_nz, g_nz, sram=True,
                                                      nnz=(x_nnz, g_nnz))
                except SramOverflowError:
                    plan = None             # step_cost raises it, naming what it names
                if first is not None and first[2] is not None:
                    parts, latency, sram = first
                    self._plan, self._primed, self._pending = plan, key, args
                    self._sram_peak = max(self._sram_peak, sram)
                else:
                    parts, self._reports, latency = training.step_cost(*args)
                    if plan is None:
                        plan = training.step_plan(*args[:6], N, self.needs_input_grad)
                    self._pending, self._primed, self._plan = None, key, plan
                    self._sram_peak = max(self._sram_peak, int(max(
                        r.sram_peak_bytes for r in self._reports.values())))
        return self._count_step(tuple(parts), tuple(parts.values()), latency, x_nnz,
                                x.shape, g.shape)

    def _count_step(self, names, parts, latency, x_nnz, x_shape, g_shape):
        """Add a costed step's figures (``parts``: its cycles of the products ``names``,
        in that order) to the layer's; (its cycles, its latency)."""
        totals = self._totals
        for k, v in zip(names, parts):
            totals[k] += v
        N = int(x_shape[1])
        size = int(x_shape[0]) * N
        self._last_input_nnz, self._last_input_size = x_nnz, size
        self._last_output_size = int(g_shape[0]) * int(g_shape[1])
        self._last_columns = N
        self._columns_max = max(self._columns_max, N)
        self._last_latency = latency
        self._activation_zeros += 1.0 - x_nnz / max(size, 1)
        self._costed_steps += 1
        return sum(parts), latency

    def queued_figures(self, cfg, mode, steps):
        """The figures of this layer's queued ``steps`` ([(input, gradient,
        needs_input_grad, stats)], in order, each following the plan), each product of
        them timed in one native call (training.planned_steps): a list of
        :meth:`_count_queued`'s figures, one a step; the layer left as it was. None where
        the plan is not a layer-pipelined one, or a step does not follow it
        (:meth:`cost_step` costs those one by one)."""
        plan, primed = self._plan, self._primed
        if plan is None or primed is None or plan["kind"] not in ("sparse", "dense") \
                or primed[0] != id(cfg) or primed[1] != mode \
                or primed[2] != tuple(self.region):
            return None
        xs, gs, counts = [], [], []
        for x, g, needs, (_, _, W) in steps:
            if W is not primed[3] or int(x.shape[1]) != primed[4] or needs != primed[5]:
                return None
            (x_nz, x_nnz), (g_nz, g_nnz) = columns.pattern_nnz(x), columns.pattern_nnz(g)
            if x_nnz is None:
                x_nnz = int(np.count_nonzero(x_nz))
            xs.append(x_nz)
            gs.append(g_nz)
            counts.append((x_nnz, g_nnz))
        timed = training.planned_steps(plan, xs, gs, counts)
        figures = []
        for (parts, latency, sram), (x, g, needs, (stats, stats_t, W)), x_nz, g_nz, \
                (x_nnz, _) in zip(timed, steps, xs, gs, counts):
            pending = (cfg, mode, self.region, W, stats, stats_t, x_nz, g_nz, needs)
            figures.append((parts, latency, sram, x_nnz, x.shape, g.shape, pending))
        return figures

    def _count_queued(self, figures):
        """:meth:`cost_step` of a queued step from its :meth:`queued_figures`."""
        parts, latency, sram, x_nnz, x_shape, g_shape, self._pending = figures
        if sram is not None:
            self._sram_peak = max(self._sram_peak, sram)
        return self._count_step(_PRODUCTS, parts, latency, x_nnz, x_shape, g_shape)


def _fill_graph(edges, placements):
    """What :meth:`WaferStrategy._longest_path` walks: (edges, placements, their counts,
    [(index, placement, [(index of its source, link) for each link into it)])], sources
    indexed by their placement (-1: none of them)."""
    index = {id(p): i for i, p in enumerate(placements)}
    incoming = {}
    for e in edges:
        incoming.setdefault(id(e.dst), []).append((index.get(id(e.src), -1), e))
    return (edges, placements, len(edges), len(placements),
            [(i, p, incoming.get(id(p), [])) for i, p in enumerate(placements)])


def _weight_csr(w, groups):
    """A Dense kernel (K x M) or a Conv2D kernel (kh, kw, cin/groups, out) as W (M x K)
    CSR, block-diagonal over the groups. A conv's columns are in its im2col's row order,
    (channel, kernel row, kernel column) within each group (nn/columns.py), so column k of
    W meets row k of the activations. A dtype scipy.sparse cannot hold (float16) is
    widened first: the cost models read the structure, which widening keeps."""
    if w.dtype.kind == "f" and w.dtype.itemsize < 4:
        w = w.astype(np.float32)
    if w.ndim == 2:
        return sps.csr_array(w.T)
    kh, kw, cin_g, out = w.shape
    og = out // groups
    w = w.transpose(2, 0, 1, 3)                       # (cin/groups, kh, kw, out)
    mats = [w[..., g * og:(g + 1) * og].reshape(cin_g * kh * kw, og).T for g in range(groups)]
    return sps.block_diag([sps.csr_array(m) for m in mats], format="csr")


def _dataflow_edges(model, placements):
    """Links between placed layers from the model's ``dataflow_graph()`` - pairs (producer,
    consumer) of layers, a composite layer standing for its placed sub-layers in order.
    A model without one (a subclassed model: its graph is not traced) gets none."""
    graph = getattr(model, "dataflow_graph", None)
    if graph is None:
        return [], False
    placed = {id(p.layer): p for p in placements}

    def chain(layer):
        return [placed[id(l)] for l in _leaves([layer]) if id(l) in placed]
    edges, seen = [], set()

    def link(a, b):
        if a is not b and (id(a), id(b)) not in seen:
            seen.add((id(a), id(b)))
            edges.append(FabricLink(a, b))
    pairs = list(graph())
    for layer in {id(l): l for pair in pairs for l in pair}.values():
        inner = chain(layer)
        for a, b in zip(inner, inner[1:]):
            link(a, b)
    for src, dst in pairs:
        a, b = chain(src), chain(dst)
        if a and b:
            link(a[-1], b[0])
    return edges, True


class FabricLink:
    """The activations one placed layer sends another across the fabric, per step: forward
    values as sparse wavelets (zeros never sent) or dense ones, whichever is fewer; the
    input gradient back, dense; over the rows the two regions share, after the hops
    between their nearest edges."""

    totals = _flushed("totals", "Wavelets and cycles, summed over the costed steps (a copy).")
    steps = _flushed("steps", "The steps costed.")
    last_latency = _flushed("last_latency", "The last step's hop cycles.")

    def __init__(self, src, dst):
        self._owner = None              # the strategy that made it (costs its queue)
        self.src, self.dst = src, dst
        self._totals = {"forward_wavelets": 0.0, "backward_wavelets": 0.0, "cycles": 0.0}
        self._steps = 0
        self._last_latency = 0.0
        self._plan = None               # (cfg, the two regions, training.link_plan of them)

    def hops(self):
        return training.link_hops(self.src.region, self.dst.region)

    def cost_step(self, cfg):
        p, q = self.src, self.dst
        plan = self._plan
        if plan is None or plan[0] is not cfg or plan[1] is not p.region \
                or plan[2] is not q.region:
            plan = self._plan = (cfg, p.region, q.region,
                                 training.link_plan(cfg, p.region, q.region))
        # the producer's output, at the zero fraction the consumer's input showed (exact
        # for a chain; for a merge, the merged tensor's)
        forward, backward, total, hop_cycles = training.link_step(
            cfg, p.region, q.region, p.last_output_size, q.last_input_nnz,
            q.last_input_size, q.needs_input_grad, plan[3])
        self._last_latency = hop_cycles
        self._totals["forward_wavelets"] += forward
        self._totals["backward_wavelets"] += backward
        self._totals["cycles"] += total
        self._steps += 1
        return total, hop_cycles


class WaferReport:
    """What a model's training steps cost on the wafer, per layer and in total.

    Per layer, ``cycles_per_step`` and its parts are means over the steps costed;
    ``columns_per_step`` is the most activation columns one step streamed through the
    layer (batch x OH*OW for a convolution, batch x T for a Dense on (B, T, d)): the
    last batch of an epoch may stream fewer."""

    def __init__(self, strategy, model):
        self.strategy = strategy
        self.model = model
        cfg = strategy.config
        steps = max(strategy.steps, 1)
        self.rows = []
        for p in strategy.placements:
            if p.region is None:         # not placed yet (see WaferStrategy.place)
                continue
            per_step = {k: v / steps for k, v in p.totals.items()}
            fwd = p.forward_figures()       # (performed, dense, bottleneck)
            self.rows.append({
                "layer": p.layer.name, "type": type(p.layer).__name__,
                "region": p.region, "mapping": p.mapping, "sram_peak_bytes": p.sram_peak,
                "cycles_per_step": sum(per_step.values()), **per_step,
                "columns_per_step": p.columns_max,      # the most a step streamed
                "macs_skipped_fraction": (1 - fwd[0] / fwd[1]) if fwd and fwd[1] else 0.0,
                "input_zeros": p.activation_zeros / max(p.costed_steps, 1),
                "bottleneck": fwd[2] if fwd else "-"})
        self.mode, self.reason = strategy.mode, strategy.reason
        self.traced = getattr(strategy, "traced", False)
        self.edges = [{"from": e.src.layer.name, "to": e.dst.layer.name, "hops": e.hops(),
                       "forward_wavelets_per_step": e.totals["forward_wavelets"] / steps,
                       "backward_wavelets_per_step": e.totals["backward_wavelets"] / steps,
                       "cycles_per_step": e.totals["cycles"] / steps}
                      for e in getattr(strategy, "edges", [])]
        self.cycles_per_step = float(np.mean(strategy.step_cycles)) if strategy.step_cycles else 0.0
        self.samples_per_step = strategy.samples / steps if strategy.steps else 0.0
        seconds = self.cycles_per_step / cfg.clock_hz
        self.wafer_samples_per_s = self.samples_per_step / seconds if seconds > 0 else 0.0
        # measured on the CPU: fit's last epoch and the train_on_batch steps since
        self.cpu_seconds = float(getattr(model, "_cpu_seconds", 0.0))
        self.cpu_samples = int(getattr(model, "_cpu_samples", 0))
        self.cpu_samples_per_s = (self.cpu_samples / self.cpu_seconds
                                  if self.cpu_seconds > 0 and self.cpu_samples else None)
        self.bottleneck_layer = max(self.rows, key=lambda r: r["cycles_per_step"])["layer"] \
            if self.rows else None
        # Attention products, and the KV cache a generating model keeps beside K and V.
        self.attention_rows = []
        by_layer = {p.layer: p for p in strategy.placements}
        for mha in getattr(strategy, "attention", []):
            context = mha.input_shape[1] if mha.input_shape and mha.input_shape[1] else 0
            kv_bytes = 2 * context * mha.num_heads * mha.key_dim * cfg.elem_bytes
            place = by_layer.get(getattr(mha, "key_dense", None))
            pes = place.region[2] * place.region[3] if place and place.region else 1
            self.attention_rows.append({
                "layer": mha.name,
                "cycles_per_step": strategy.attention_cycles.get(mha, 0.0) / steps,
                "kv_cache_bytes_per_sequence": kv_bytes,
                "kv_cache_bytes_per_pe": -(-kv_bytes // pes)})

    def __str__(self):
        cfg = self.strategy.config
        w = max([16] + [len(r["layer"]) for r in self.rows])
        lines = [f"Wafer report — {cfg.rows}x{cfg.cols} PEs, {cfg.dtype}, {self.mode} "
                 f"({self.reason})",
                 f"{'layer':<{w}} {'region (r0,c0,R,C)':<22} {'mapping':<22} {'SRAM peak':>10} "
                 f"{'cycles/step':>12} {'fwd':>9} {'dX':>9} {'dW':>9} {'update':>8} "
                 f"{'in zeros':>8} {'skipped':>8}"]
        for r in self.rows:
            lines.append(f"{r['layer']:<{w}} {str(tuple(int(v) for v in r['region'])):<22} "
                         f"{r['mapping']:<22} {r['sram_peak_bytes']:>10,} "
                         f"{r['cycles_per_step']:>12,.0f} {r['forward']:>9,.0f} "
                         f"{r['input-gradient']:>9,.0f} {r['weight-gradient']:>9,.0f} "
                         f"{r['update']:>8,.0f} {r['input_zeros']:>8.1%} "
                         f"{r['macs_skipped_fraction']:>8.1%}")
        lines.append("in zeros: the fraction of a layer's inputs that were zero (ReLU), not "
                     "sent where a link carries them as sparse wavelets; skipped: forward MACs "
                     "not performed (zero weights or activations)")
        if self.mode == "layer-pipelined" and not self.traced:
            lines.append("graph: not traced (a subclassed model): costed layer by layer, the "
                         "fill summed over the layers, no fabric links between regions")
        elif self.edges:
            lines.append("fabric links (layers in topological order; forward values sent as "
                         "sparse wavelets, or dense ones where that is fewer; gradients back "
                         "dense):")
            for e in self.edges:
                lines.append(f"  {e['from']} -> {e['to']}: {e['hops']} hops, "
                             f"{e['forward_wavelets_per_step']:,.0f} + "
                             f"{e['backward_wavelets_per_step']:,.0f} wavelets/step, "
                             f"{e['cycles_per_step']:,.0f} cycles/step")
        for a in self.attention_rows:
            lines.append(f"{a['layer']}: attention products + softmax {a['cycles_per_step']:,.0f} "
                         f"cycles/step; KV cache when generating "
                         f"{a['kv_cache_bytes_per_sequence']:,} B per sequence "
                         f"({a['kv_cache_bytes_per_pe']:,} B per PE of its K projection)")
        lines.append(f"bottleneck layer: {self.bottleneck_layer}; "
                     f"step: {self.cycles_per_step:,.0f} "
                     f"cycles over {self.strategy.steps} steps")
        cpu = f"{self.cpu_samples_per_s:,.0f}" if self.cpu_samples_per_s else "-"
        over = f" over {self.cpu_samples:,} samples" if self.cpu_samples_per_s else ""
        lines.append(f"samples/s: wafer {self.wafer_samples_per_s:,.0f} (simulated at "
                     f"{cfg.clock_hz / 1e6:.0f} MHz) vs this CPU {cpu} (measured{over})")
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self):
        return {"mode": self.mode, "reason": self.reason, "traced": self.traced,
                "edges": self.edges, "layers": [
            {**r, "region": [int(v) for v in r["region"]]} for r in self.rows],
            "attention": self.attention_rows,
            "cycles_per_step": self.cycles_per_step,
            "wafer_samples_per_s": self.wafer_samples_per_s,
            "cpu_samples_per_s": self.cpu_samples_per_s, "bottleneck_layer": self.bottleneck_layer}

    def plot(self, path):
        """Write a PNG of the placement: a zoom on the PEs the layers use (each coloured by
        its cycles per step, the bottleneck outlined in red), where they sit on the wafer,
        and each layer's cycles per step split into forward, input gradient, weight
        gradient and update. Returns ``path``; see :func:`wsekern.wafer.plots.placement`."""
        from ..wafer import plots
        cfg = self.strategy.config
        layers = [{"name": r["layer"], "region": r["region"], "cycles": r["cycles_per_step"],
                   **{k: r[k] for k in ("forward", "input-gradient", "weight-gradient",
                                        "update")}} for r in self.rows]
        return plots.placement(
            layers, wafer_shape=(cfg.rows, cfg.cols), bottleneck=self.bottleneck_layer,
            title=f"{self.mode} on {cfg.rows}x{cfg.cols} PEs: {self.cycles_per_step:,.0f} "
                  f"cycles/step, bottleneck layer {self.bottleneck_layer}", path=path)

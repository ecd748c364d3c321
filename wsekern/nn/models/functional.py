"""``Model(inputs, outputs)``: the graph of layer calls between ``keras.Input`` tensors and
the outputs, run node by node in topological order (shared layers, several inputs and
outputs as lists or dicts, sub-models from intermediate outputs, models as layers)."""
import threading
from contextlib import contextmanager

import numpy as np

from ..layers.base import training_given
from ..layers.input_layer import InputLayer
from ..symbolic import KerasTensor, flatten, map_structure
from ..tensor import Tensor
from .model import Model


def flatten_values(structure):
    """The leaves (Tensors, arrays) of a nested list/tuple/dict, in order."""
    if isinstance(structure, (list, tuple)):
        return [v for item in structure for v in flatten_values(item)]
    if isinstance(structure, dict):
        return [v for item in structure.values() for v in flatten_values(item)]
    return [structure]


def topological_nodes(outputs, inputs):
    """The nodes that lead from ``inputs`` to ``outputs``, each after the nodes it reads;
    a clear error when an output needs an Input that is not among ``inputs``."""
    given = {id(t) for t in inputs}
    order, state = [], {}
    stack = [(t.node, False) for t in reversed(outputs)]
    while stack:                                   # iterative DFS: deep graphs are fine
        node, expanded = stack.pop()
        if expanded:
            if state.get(id(node)) != "done":
                state[id(node)] = "done"
                order.append(node)
            continue
        if state.get(id(node)):
            continue
        state[id(node)] = "open"
        stack.append((node, True))
        if isinstance(node.layer, InputLayer) and not node.args:
            if id(node.outputs) not in given:
                raise ValueError(f"Graph disconnected: the outputs need input "
                                 f"{node.layer.name!r}, which is not among the model's inputs "
                                 f"{[t.name for t in inputs]}")
            continue
        for t in reversed(node.input_tensors):
            if id(t) in given:
                if state.get(id(t.node)) != "done":
                    state[id(t.node)] = "done"
                    order.append(t.node)
                continue
            stack.append((t.node, False))
    inputs_first = [t.node for t in inputs]
    return inputs_first + [n for n in order if not any(n is i for i in inputs_first)]


def map_graph_order(outputs, parents, layer_of, stops, inputs):
    """The layers of a graph in the order Keras 3's Functional keeps them (``map_graph``:
    by depth from the outputs, deepest first; ties in the order a depth-first walk from the
    outputs meets them; inputs the outputs do not use last among depth 0, first of them).
    Nodes and layers are any hashable keys: ``outputs`` the output nodes in Keras's flatten
    order (dict keys sorted), ``parents(n)`` a node's parent nodes likewise, ``layer_of(n)``
    its layer, ``stops(n)`` true for a node the walk does not go past (an input), ``inputs``
    the model's input nodes. One implementation for the live graph and for a saved spec
    (keras_writer), so ``model.layers``, the weights and Keras's files agree."""
    finished, order, index = set(), [], {}
    for out in outputs:
        if out in finished:
            continue
        index.setdefault(layer_of(out), len(index))
        stack = [(out, iter([] if stops(out) else parents(out)))]
        on_stack = {out}
        while stack:                      # iterative: a deep graph must not hit the limit
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_stack.discard(node)
                if node not in finished:
                    finished.add(node)
                    order.append(node)
                continue
            if nxt in finished or nxt in on_stack:
                continue
            index.setdefault(layer_of(nxt), len(index))
            on_stack.add(nxt)
            stack.append((nxt, iter([] if stops(nxt) else parents(nxt))))
    node_depth, layer_depth = {}, {}
    for n in reversed(order):
        depth = max(node_depth.setdefault(n, 0), layer_depth.get(layer_of(n), 0))
        layer_depth[layer_of(n)] = node_depth[n] = depth
        if not stops(n):
            for p in parents(n):
                node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    for n in inputs:                                  # inputs the outputs do not use
        if layer_of(n) not in layer_depth:
            layer_depth[layer_of(n)], index[layer_of(n)] = 0, -1
    return sorted(layer_depth, key=lambda k: (-layer_depth[k], index[k]))


def _sorted_flatten(structure):
    """KerasTensors in Keras's ``tree.flatten`` order (dict keys sorted)."""
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in _sorted_flatten(v)]
    if isinstance(structure, dict):
        return [t for k in sorted(structure) for t in _sorted_flatten(structure[k])]
    return [structure] if isinstance(structure, KerasTensor) else []


# id(model) -> its layers in the files' order, for the thread inside file_layer_order only
_FILE_ORDER = threading.local()


@contextmanager
def file_layer_order(model):
    """Within: every functional model in ``model`` (nested ones too) lists its layers, so
    its weights, in the order wsekern.nn kept before session 20 (inputs, then layers as the
    graph runs): the order of the flat weight list, mask keys and optimizer-state keys of
    wsekern.nn's own files, written before and since, so files stay as they were.

    Only for the calling thread: another thread saving, training or reading the same model
    (or a model sharing a nested one) meanwhile sees Keras's order, and every thread finds
    it as it was afterwards (the order once was swapped on the model itself)."""
    active = getattr(_FILE_ORDER, "orders", None)
    if active is None:
        active = _FILE_ORDER.orders = {}
    added, todo = [], [model]
    try:
        while todo:
            layer = todo.pop()
            if id(layer) in active:        # met already (or an enclosing save set it)
                continue
            if isinstance(layer, Functional):
                active[id(layer)] = layer._file_order_layers()
            else:
                active[id(layer)] = None   # marks it met; only Functional reads the entry
            added.append(id(layer))
            todo.extend(layer.layers if isinstance(layer, Model) else layer._sublayers())
        yield model
    finally:
        for key in added:
            del active[key]


class Functional(Model):
    """A model defined by its symbolic inputs and outputs (``keras.Model(inputs, outputs)``)."""

    def get_config(self):
        """The graph: its layers' configs, the calls between them, inputs and outputs
        (Model's name and trainable alone made ``Model.from_config`` an empty model)."""
        from ..saving.model_config import functional_config
        return functional_config(self)

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)   # functional, _1..
        for what, struct in (("inputs", inputs), ("outputs", outputs)):
            bad = [v for v in flatten_values(struct) if not isinstance(v, KerasTensor)]
            if bad or not flatten(struct):
                raise TypeError(f"Model({what}=...) takes symbolic tensors (from keras.Input "
                                f"and layers called on them), as one, a list or a dict; "
                                f"received {[type(v).__name__ for v in bad] or struct!r}")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        for t in self.inputs:
            if t.node is None or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"Model inputs must come from keras.Input(...); {t.name!r} "
                                 f"is the output of layer {t.node.layer.name!r}")
        self._nodes = topological_nodes(self.outputs, self.inputs)
        self._graph_layers = self._keras_order_layers()
        self._input_names = (list(inputs) if isinstance(inputs, dict)
                             else [t.node.layer.name for t in self.inputs])
        self._output_names = (list(outputs) if isinstance(outputs, dict)
                              else [t.node.layer.name for t in self.outputs])
        if len(set(self._output_names)) != len(self._output_names):
            self._output_names = [f"output_{i}" for i in range(len(self.outputs))]
        self.built = True
        self.input_shape = map_structure(lambda t: t.shape, inputs)
        self.output_shape = map_structure(lambda t: t.shape, outputs)
        self._placed()                    # built already: the wafer sees the first step

    def _keras_order_layers(self):
        """The layers in Keras's order (``map_graph_order``): ``layers``, the weights,
        ``trainable_weights`` (so the optimizer's slots) and ``summary`` match Keras's."""
        by_id = {id(n.layer): n.layer for n in self._nodes}
        given = {id(t) for t in self.inputs}

        def stops(node):
            return isinstance(node.layer, InputLayer) and not node.args or \
                any(id(o) in given for o in flatten(node.outputs))
        parents = {id(n): [t.node for t in _sorted_flatten((n.args, n.kwargs))]
                   for n in self._nodes}           # once each: the walk asks twice
        ranked = map_graph_order([t.node for t in _sorted_flatten(self._outputs_struct)],
                                 lambda n: parents[id(n)], lambda n: id(n.layer), stops,
                                 [t.node for t in self.inputs])
        return [by_id[k] for k in ranked]

    def _file_order_layers(self):
        """The order of sessions before 20: the inputs, then each layer as the graph first
        runs it (see ``file_layer_order``)."""
        seen, out = set(), []
        for layer in [t.node.layer for t in self.inputs] + [n.layer for n in self._nodes]:
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    def _file_order(self):
        """The files' order when this thread is inside file_layer_order, else None."""
        orders = getattr(_FILE_ORDER, "orders", None)
        return orders.get(id(self)) if orders else None

    @property
    def layers(self):
        file_order = self._file_order()
        return list(self._graph_layers if file_order is None else file_order)

    def _sublayers(self):
        # the variable walk (weights, trainable_weights) reads the tracked attributes, where
        # _graph_layers holds Keras's order: put the graph's layers in the files' order there
        found = super()._sublayers()
        file_order = self._file_order()
        if file_order is None:
            return found
        graph = {id(layer) for layer in file_order}
        ordered = iter(file_order)
        return [next(ordered) if id(layer) in graph else layer for layer in found]

    @property
    def output_names(self):
        return list(self._output_names)

    @property
    def input_names(self):
        return list(self._input_names)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    def _input_specs(self):
        return [(t.shape[1:], t.dtype) for t in self.inputs]

    def _by_input_name(self, x, what):
        """A dict of inputs as a list in the model's input order."""
        missing = [k for k in self._input_names if k not in x]
        if missing:
            raise ValueError(f"{what} is missing inputs {missing}; the model's inputs are "
                             f"{self._input_names}")
        return [x[k] for k in self._input_names]

    def _checked_x(self, x, what="x"):
        if isinstance(x, dict):
            x = self._by_input_name(x, what)
        return super()._checked_x(x, what)

    def _flat_inputs(self, inputs):
        values = self._by_input_name(inputs, "the call") if isinstance(inputs, dict) \
            else flatten_values(inputs)
        if len(values) != len(self.inputs):
            raise ValueError(f"model {self.name!r} has {len(self.inputs)} inputs "
                             f"{self._input_names}; received {len(values)}")
        out = []
        for t, v in zip(self.inputs, values):
            v = v if isinstance(v, Tensor) else Tensor(np.asarray(v))
            if v.dtype != t.dtype and not v.requires_grad:
                v = Tensor(v.data.astype(t.dtype))
            if v.ndim != len(t.shape) or any(s is not None and s != d
                                             for s, d in zip(t.shape[1:], v.shape[1:])):
                raise ValueError(f"input {t.node.layer.name!r} of model {self.name!r} expects "
                                 f"shape {t.shape}; received {v.shape}")
            out.append(v)
        return out

    def call(self, inputs, training=False):
        given = training_given()
        values = {id(t): v for t, v in zip(self.inputs, self._flat_inputs(inputs))}
        read = lambda a: values[id(a)] if isinstance(a, KerasTensor) else a   # noqa: E731
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and not node.args:
                continue
            # Keras 3: the model's `training`, when it was given one (fit, predict...),
            # reaches every layer, over one given when the graph was built
            # (`base(inputs, training=False)` in the fine-tuning guide); a bare model(x)
            # keeps the graph's (MC dropout: `Dropout(0.5)(x, training=True)`)
            kwargs = map_structure(read, node.kwargs)
            if given or kwargs.get("training") is None:
                kwargs["training"] = training
            out = node.layer(*map_structure(read, node.args), **kwargs)
            produced = flatten_values(out)
            expected = flatten(node.outputs)
            if len(produced) != len(expected):
                raise RuntimeError(f"layer {node.layer.name!r} returned {len(produced)} "
                                   f"tensors where its symbolic call gave {len(expected)}")
            for t, v in zip(expected, produced):
                values[id(t)] = v
        return map_structure(read, self._outputs_struct)

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def dataflow_graph(self):
        """(producer, consumer) pairs of layers with weights, in topological order: the
        activations that travel between them, through any layers without weights (merges,
        activations, reshapes) on the way."""
        pairs, seen = [], set()

        def producers(node, out, visited):
            for t in node.input_tensors:
                src = t.node
                if id(src) in visited:
                    continue
                visited.add(id(src))
                if src.layer.weights:
                    out.append(src.layer)
                elif not (isinstance(src.layer, InputLayer) and not src.args):
                    producers(src, out, visited)
            return out
        for node in self._nodes:
            if not node.layer.weights:
                continue
            for src in producers(node, [], set()):
                key = (id(src), id(node.layer))
                if key not in seen and src is not node.layer:
                    seen.add(key)
                    pairs.append((src, node.layer))
        return pairs

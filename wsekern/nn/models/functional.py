"""``Model(inputs, outputs)``: the graph of layer calls between ``keras.Input`` tensors and
the outputs, run node by node in topological order (shared layers, several inputs and
outputs as lists or dicts, sub-models from intermediate outputs, models as layers)."""
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


class Functional(Model):
    """A model defined by its symbolic inputs and outputs (``keras.Model(inputs, outputs)``)."""

    def get_config(self):
        """The graph: its layers' configs, the calls between them, inputs and outputs
        (Model's name and trainable alone made ``Model.from_config`` an empty model)."""
        from ..saving.model_config import functional_config
        return functional_config(self)

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name or "functional", trainable=trainable, **kwargs)
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
        seen, graph_layers = set(), []
        for t in self.inputs:
            seen.add(id(t.node.layer))
            graph_layers.append(t.node.layer)
        for node in self._nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                graph_layers.append(node.layer)
        self._graph_layers = graph_layers
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

    @property
    def layers(self):
        return list(self._graph_layers)

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

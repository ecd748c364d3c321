"""Writing Keras 3's formats: a ``.keras`` zip (``metadata.json``, ``config.json`` in
Keras's schema, ``model.weights.h5`` in Keras's HDF5 layout), the inverse of
:mod:`keras_format`'s reader, and a ``.weights.h5`` file of the weights alone.

A model Keras can rebuild is one of Keras's layers in a Sequential or functional model (the
``keras.ops`` nodes the reader rebuilds included). What Keras's format cannot hold rides
along in the zip under ``wsekern/`` (our own config with the sparsity masks and the
optimizer's whole state), which Keras ignores and ``load_model`` reads, so a file written
here loads back here exactly. A pruned layer is written to Keras as its dense kernel with
the pruned weights zero (Keras's layer then computes what ours does). h5py is needed
(``pip install 'wsekern[keras]'``); it is imported only when such a file is written.
"""
import io
import json
import time

import numpy as np

from .keras_format import _SLOT_GROUPS, _find_layer, _layer_groups

KERAS_VERSION = "3.15.1"          # the Keras the files were checked against
NATIVE_PREFIX = "wsekern/"
# our layers that Keras 3 has under the same name and config (checked against Keras 3.15.1:
# the keys below aside, our config is a subset of Keras's with the same meanings)
_KERAS_LAYERS = frozenset("""InputLayer Dense Conv1D Conv2D Conv2DTranspose DepthwiseConv2D
    SeparableConv1D SeparableConv2D MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D GlobalMaxPooling2D
    BatchNormalization LayerNormalization Embedding MultiHeadAttention Flatten Reshape Permute
    RepeatVector Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise
    GaussianDropout Activation ReLU LeakyReLU ELU PReLU Softmax UpSampling1D UpSampling2D
    ZeroPadding1D ZeroPadding2D Cropping1D Cropping2D Masking Rescaling Identity
    TimeDistributed Add Subtract Multiply Average Maximum Minimum Concatenate Dot""".split())
# config keys of ours that Keras's layer does not take: dropped (sparsity: the kernel is
# written dense with the pruned weights zero; flash_attention: how, not what, it computes)
_OURS_ONLY = {"sparsity": None, "flash_attention": None}
_NO_TRAINABLE_ARG = ("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
# keras.ops classes of our OpLayer's ops (the reader's table, inverted)
_OP_CLASSES = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply",
               "divide": "Divide", "matmul": "Matmul", "negative": "Negative",
               "not_equal": "NotEqual", "equal": "Equal", "logical_or": "LogicalOr",
               "logical_and": "LogicalAnd", "logical_not": "LogicalNot", "any": "Any",
               "all": "All"}
_MODULE_OF_KEY = (("_initializer", "keras.initializers"), ("_regularizer", "keras.regularizers"),
                  ("_constraint", "keras.constraints"))


class NotKerasWritable(ValueError):
    """The model holds something Keras's format cannot express (the message says what)."""


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("writing Keras's format needs h5py, an optional extra of wsekern: "
                          "pip install 'wsekern[keras]' (or pip install h5py)") from None
    return h5py


# -- config.json ----------------------------------------------------------------------------
def _wrap_value(key, v):
    """A config value as Keras serializes it: {class_name, config} objects get their
    module (initializers, regularizers, constraints)."""
    if isinstance(v, dict) and "class_name" in v and "config" in v and "module" not in v:
        module = next((m for suffix, m in _MODULE_OF_KEY if key.endswith(suffix)), None)
        if module is None:
            raise NotKerasWritable(f"its config value {key}={v!r:.80} has no Keras form here")
        return {"module": module, "class_name": v["class_name"], "config": v["config"],
                "registered_name": None}
    return v


def spec_name(spec):
    """A layer's name in our spec: beside its config, as Keras keeps it (a custom layer's
    ``get_config`` may leave it out), else in it."""
    return spec.get("name") or spec["config"].get("name")


def _layer_spec(spec, where, owner=None):
    cn = spec["class_name"]
    if cn in ("Sequential", "Functional"):
        return model_config(spec, _find(owner, spec["config"]["name"]) if owner is not None
                            else None, where)
    if cn not in _KERAS_LAYERS:
        name = spec_name(spec) or cn
        from .. import layers as layers_mod
        if not isinstance(getattr(layers_mod, cn, None), type):
            raise NotKerasWritable(f"layer {name!r} is of the custom class {cn!r}: wsekern.nn "
                                   f"writes Keras's format for Keras's own layers only")
        raise NotKerasWritable(f"layer {name!r} is wsekern.nn's {cn}, which Keras does not "
                               f"have")
    config = {}
    for k, v in spec["config"].items():
        if k in _OURS_ONLY or (k == "trainable" and cn in _NO_TRAINABLE_ARG):
            continue
        if k == "layer" and cn == "TimeDistributed":
            config[k] = _layer_spec(v, f"{where}/layer")
            continue
        config[k] = _wrap_value(k, v)
    if cn == "InputLayer":
        config = {"batch_shape": [None] + list(config.pop("shape")),
                  "dtype": config.get("dtype", "float32"), "sparse": False, "ragged": False,
                  "name": config["name"]}
    return {"module": "keras.layers", "class_name": cn, "config": config,
            "registered_name": None}


def _op_spec(spec, where):
    c = spec["config"]
    cls = _OP_CLASSES.get(c.get("op"))
    if cls is None:
        raise NotKerasWritable(f"the graph applies {c.get('op')!r} to a symbolic tensor "
                               f"(layer {c.get('name')!r}), which is not written to Keras")
    config = {"name": c["name"]}
    if cls in ("Any", "All"):
        config.update(axis=c.get("axis"), keepdims=c.get("keepdims", False))
    return {"module": "keras.src.ops.numpy", "class_name": cls, "config": config,
            "registered_name": None}


def model_config(spec, model=None, where="model"):
    """Our model spec (``model_config.model_spec``) of ``model`` as Keras's serialized
    model (``model`` gives the symbolic tensors' shapes and dtypes, which Keras's config
    records)."""
    cn, c = spec["class_name"], spec["config"]
    if cn == "Sequential":
        layers = []
        if c.get("input_shape") is not None:
            layers.append({"module": "keras.layers", "class_name": "InputLayer",
                           "config": {"batch_shape": [None] + list(c["input_shape"]),
                                      "dtype": c.get("input_dtype") or "float32",
                                      "sparse": False, "ragged": False,
                                      "name": "input_layer"}, "registered_name": None})
        layers += [_layer_spec(s, f"{where}/{s['config'].get('name')}", model)
                   for s in c["layers"]]
        out = {"module": "keras", "class_name": "Sequential",
               "config": {"name": c["name"], "trainable": c.get("trainable", True),
                          "dtype": None, "layers": layers}, "registered_name": None}
        if c.get("input_shape") is not None:
            out["build_config"] = {"input_shape": [None] + list(c["input_shape"])}
        return out
    if cn != "Functional":
        raise NotKerasWritable(f"{where} is a {cn} (a subclassed model: Keras would need its "
                               f"code)")
    layers = c["layers"]
    nodes = c["nodes"]
    # node j of ours -> (layer name, its index among that layer's nodes)
    count, history = {}, []
    outs = None
    if model is not None and len(getattr(model, "_nodes", ())) == len(nodes):
        outs = [_flat_outputs(n.outputs) for n in model._nodes]
    for node in nodes:
        i = node["layer"]
        history.append((spec_name(layers[i]), count.get(i, 0)))
        count[i] = count.get(i, 0) + 1

    def tensor(v):
        if isinstance(v, dict) and "__tensor__" in v:
            j, k = v["__tensor__"]
            name, n = history[j]
            shape, dtype = [None], "float32"
            if outs is not None and k < len(outs[j]):
                shape, dtype = list(outs[j][k].shape), outs[j][k].dtype.name
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": shape, "dtype": dtype,
                               "keras_history": [name, n, k]}}
        if isinstance(v, list):
            return [tensor(x) for x in v]
        if isinstance(v, dict):
            return {kk: tensor(x) for kk, x in v.items()}
        return v

    def io(v):
        if isinstance(v, dict) and "__tensor__" in v:
            j, k = v["__tensor__"]
            return [history[j][0], history[j][1], k]
        if isinstance(v, list):
            return [io(x) for x in v]
        return {kk: io(x) for kk, x in v.items()}
    out_layers = []
    for i in keras_layer_order(c):
        s = layers[i]
        at = f"{where}/{s['config'].get('name')}"
        k = _op_spec(s, at) if s["class_name"] == "OpLayer" else _layer_spec(s, at, model)
        mine = [nd for nd in nodes if nd["layer"] == i]
        if s["class_name"] == "OpLayer":
            for nd in mine:
                c_ = s["config"]
                args = tensor(nd["args"])
                if c_.get("constant") is not None:
                    args = [c_["constant"]] + args if c_.get("reverse") else args + \
                        [c_["constant"]]
                nd["_keras_args"] = args
        k["name"] = spec_name(s)
        k["inbound_nodes"] = [] if s["class_name"] == "InputLayer" else [
            {"args": nd.get("_keras_args", tensor(nd["args"])),
             "kwargs": {kk: tensor(x) for kk, x in nd["kwargs"].items()
                        if kk != "training"}} for nd in mine]
        out_layers.append(k)
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": c["name"], "trainable": c.get("trainable", True),
                       "layers": out_layers, "input_layers": io(c["inputs"]),
                       "output_layers": io(c["outputs"])},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _refs(v):
    """The [node, tensor] references in a node's args/kwargs or a model's inputs/outputs,
    in Keras's tree.flatten order (dict keys sorted)."""
    if isinstance(v, dict) and "__tensor__" in v:
        return [tuple(v["__tensor__"])]
    if isinstance(v, (list, tuple)):
        return [r for x in v for r in _refs(x)]
    if isinstance(v, dict):
        return [r for k in sorted(v) for r in _refs(v[k])]
    return []


def keras_layer_order(config):
    """Our functional spec's layer indices in the order Keras's Functional keeps them
    (``map_graph``; Functional.layers keeps it too: see ``map_graph_order``). Keras names
    its HDF5 groups, and orders its trainable variables (so its optimizer's), by this order."""
    from ..models.functional import map_graph_order
    nodes, layers = config["nodes"], config["layers"]
    inputs = [r[0] for r in _refs(config["inputs"])]
    given = set(inputs)
    ranked = map_graph_order(
        [r[0] for r in _refs(config["outputs"])],
        lambda j: [r[0] for r in _refs((nodes[j]["args"], nodes[j]["kwargs"]))],
        lambda j: nodes[j]["layer"],
        lambda j: j in given or layers[nodes[j]["layer"]]["class_name"] == "InputLayer",
        inputs)
    return ranked + [i for i in range(len(layers)) if i not in set(ranked)]


def _flat_outputs(v):
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in _flat_outputs(x)]
    if isinstance(v, dict):
        return [t for x in v.values() for t in _flat_outputs(x)]
    return [v]


# loss and metric classes of ours that Keras 3 has with the same constructor arguments
# (checked against Keras 3.15.1: our configs are a subset of what its constructors take)
_KERAS_LOSSES = frozenset("""BinaryCrossentropy CategoricalCrossentropy CategoricalHinge
    CosineSimilarity Hinge Huber KLDivergence LogCosh MeanAbsoluteError
    MeanAbsolutePercentageError MeanSquaredError MeanSquaredLogarithmicError Poisson
    SparseCategoricalCrossentropy SquaredHinge""".split())
_KERAS_METRICS = frozenset("""AUC Accuracy BinaryAccuracy BinaryCrossentropy CategoricalAccuracy
    CategoricalCrossentropy CategoricalHinge CosineSimilarity Hinge KLDivergence LogCoshError
    MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredError MeanSquaredLogarithmicError
    Poisson Precision Recall RootMeanSquaredError SparseCategoricalAccuracy
    SparseCategoricalCrossentropy SparseTopKCategoricalAccuracy SquaredHinge
    TopKCategoricalAccuracy TruePositives FalsePositives TrueNegatives
    FalseNegatives""".split())


# our learning-rate schedules, each Keras's of the same name and config (Keras 3.15.1)
_KERAS_SCHEDULES = frozenset("""CosineDecay CosineDecayRestarts ExponentialDecay
    InverseTimeDecay PiecewiseConstantDecay PolynomialDecay""".split())


def _keras_compile_value(v, module, known):
    """A loss/metric value of our compile spec in Keras's form, or None if it has none."""
    if v is None or isinstance(v, (str, int, float)):
        return v
    if isinstance(v, list):
        out = [_keras_compile_value(x, module, known) for x in v]
        return None if any(x is None and y is not None for x, y in zip(out, v)) else out
    if isinstance(v, dict) and "class_name" not in v:
        out = {k: _keras_compile_value(x, module, known) for k, x in v.items()}
        return None if any(out[k] is None and v[k] is not None for k in v) else out
    if isinstance(v, dict) and v.get("class_name") in known and \
            isinstance(v.get("config"), dict):
        return {"module": module, "class_name": v["class_name"], "config": v["config"],
                "registered_name": None}
    return None


def compile_config(model, compile_spec, optimizer_spec):
    """Keras's compile_config, or None (with the reason) where Keras could not rebuild it."""
    if compile_spec is None:
        return None, None
    values = {}
    for key, module, known in (("loss", "keras.losses", _KERAS_LOSSES),
                               ("loss_weights", None, ()),
                               ("metrics", "keras.metrics", _KERAS_METRICS),
                               ("weighted_metrics", "keras.metrics", _KERAS_METRICS)):
        v = compile_spec.get(key)
        values[key] = _keras_compile_value(v, module, known)
        if values[key] is None and v is not None:
            return None, (f"its {key} holds an object Keras does not have (custom, or a "
                          f"wrapped function)")
    if optimizer_spec is None:
        return None, "it has no optimizer"
    cls = optimizer_spec["class_name"]
    config = dict(optimizer_spec["config"])
    lr = config.get("learning_rate")
    if isinstance(lr, dict) and lr.get("class_name") in _KERAS_SCHEDULES and \
            isinstance(lr.get("config"), dict):
        config["learning_rate"] = {"module": "keras.optimizers.schedules",
                                   "class_name": lr["class_name"], "config": lr["config"],
                                   "registered_name": None}
    if any(isinstance(v, dict) and "module" not in v for v in config.values()):
        return None, f"its {cls} optimizer has a learning-rate schedule Keras does not have"
    return {"optimizer": {"module": "keras.optimizers", "class_name": cls, "config": config,
                          "registered_name": None},
            "loss": values["loss"], "loss_weights": values["loss_weights"],
            "metrics": values["metrics"],
            "weighted_metrics": values["weighted_metrics"], "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}, None


# -- model.weights.h5 -----------------------------------------------------------------------
_SUBLAYERS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
              "TimeDistributed": ("layer",)}


def _vars(group, name, arrays):
    g = group.create_group("vars")
    g.attrs["name"] = name
    for i, a in enumerate(arrays):
        g.create_dataset(str(i), data=np.asarray(a))


def _find(model, name):
    return _find_layer(model, name, NotKerasWritable, "the model")


def write_container(h5, model, kspec, variables):
    """The weights of a Keras-serialized container (``kspec``) from ``model`` into the HDF5
    group ``h5``; appends its trainable variables, in Keras's order, to ``variables`` as
    (our variable, Keras's shape)."""
    sequential = kspec["class_name"] == "Sequential"
    layers_group = h5.create_group("layers")
    for s, group in _layer_groups(kspec["config"]["layers"], sequential):
        g = layers_group.create_group(group)
        name = s.get("name") or s["config"]["name"]
        if s["class_name"] == "InputLayer":
            _vars(g, name, [])
            continue
        layer = _find(model, name)
        if s["class_name"] in ("Sequential", "Functional"):
            write_container(g, layer, s, variables if model.trainable else [])
            _vars(g, name, [])
            continue
        weights = [np.asarray(w) for w in layer.get_weights()]
        if s["class_name"] in _SUBLAYERS:
            subs = _SUBLAYERS[s["class_name"]]
            per = len(weights) // len(subs) if weights else 0
            for j, sub in enumerate(subs):
                _vars(g.create_group(sub), sub, weights[j * per:(j + 1) * per])
            if s["class_name"] == "MultiHeadAttention":
                _vars(g.create_group("_dropout_layer"), "dropout", [])
                _vars(g.create_group("_softmax"), "softmax", [])
            _vars(g, name, [])
        else:
            _vars(g, name, weights)
        if model.trainable:
            tw = layer.trainable_weights
            shapes = [w.shape for w in weights] if len(tw) == len(weights) else \
                [np.shape(v.data) for v in tw]
            variables.extend(zip(tw, shapes))


def _optimizer_vars(model, variables):
    """Keras's optimizer/vars arrays for ``variables`` [(ours, Keras's shape)], or (None,
    the reason)."""
    opt = model.optimizer
    name = type(opt).__name__
    groups = _SLOT_GROUPS.get(name)
    if groups is None:
        return None, (f"Keras's layout of the {name} optimizer's variables is not known here "
                      f"(it is for {', '.join(sorted(_SLOT_GROUPS))})")
    ours = {id(v): i for i, v in enumerate(model.trainable_weights)}
    if len(ours) != len(variables) or any(id(v) not in ours for v, _ in variables):
        return None, "the model's trainable variables do not match Keras's one for one"
    for v, shape in variables:
        if int(np.prod(np.shape(v.data))) != int(np.prod(shape)):
            return None, ("a pruned layer trains only its kept weights, which Keras's "
                          "optimizer does not")
    state = opt.state_arrays(model.trainable_weights)
    active = list(opt._active_slots())
    lr = opt._learning_rate
    out = [np.asarray(state["iterations"], dtype=np.int64)]
    if not callable(lr):
        out.append(np.asarray(lr, dtype=np.float32))
    for grp in groups:
        names = [n for n in grp if n in active]
        if not names:
            continue
        for v, shape in variables:
            for n in names:
                key = f"{ours[id(v)]}/{active.index(n)}"
                arr = state.get(key)
                arr = np.zeros(shape, np.asarray(v.data).dtype) if arr is None else \
                    np.asarray(arr).reshape(shape)
                out.append(arr)
    if name == "Nadam":           # Keras's _u_product, last (ours tracks the same product)
        out.append(np.asarray(opt._u_product, dtype=np.float32))
    return out, None


def weights_h5(model, kspec, with_optimizer):
    """model.weights.h5's bytes and the reason the optimizer state was left out (or None)."""
    h5py = _import_h5py()
    buf = io.BytesIO()
    reason = None
    with h5py.File(buf, "w") as h5:
        variables = []
        write_container(h5, model, kspec, variables)
        _vars(h5, model.name, [])
        if with_optimizer:
            arrays, reason = _optimizer_vars(model, variables)
            if arrays is not None:
                _vars(h5.create_group("optimizer"), type(model.optimizer).__name__.lower(),
                      arrays)
    return buf.getvalue(), reason


def metadata():
    return json.dumps({"keras_version": KERAS_VERSION,
                       "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}).encode()

"""``plot_model`` / ``model_to_dot``: the model's layer graph as Graphviz DOT text (no
dependency), drawn to PNG/SVG/PDF by Graphviz's ``dot`` program when it is installed, or
written as DOT or as a text rendering (``.dot``/``.gv``/``.txt``) without it."""
import os
import shutil
import subprocess

from ..._atomic import write_bytes as _write

DRAWN_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def _graph(model):
    """[(key, layer, output_shape)] in topological order and [(src_key, dst_key)] edges."""
    if not model.built:
        model.build()
    nodes = getattr(model, "_nodes", None)
    if nodes is not None:
        entries = [(id(n), n.layer, _shape(n.outputs)) for n in nodes]
        edges = [(id(t.node), id(n)) for n in nodes for t in n.input_tensors]
        return entries, list(dict.fromkeys(edges))
    layers = list(model.layers)            # Sequential or a subclassed model: a chain
    entries = [(id(layer), layer, getattr(layer, "output_shape", None)) for layer in layers]
    edges = [(id(a), id(b)) for a, b in zip(layers, layers[1:])]
    return entries, edges


def _shape(outputs):
    shape = getattr(outputs, "shape", None)
    return tuple(shape) if shape is not None else None


def _label(layer, shape, show_shapes, show_dtype, show_layer_names, show_layer_activations,
           show_trainable):
    kind = type(layer).__name__
    lines = [f"{layer.name} ({kind})" if show_layer_names else kind]
    activation = getattr(layer, "activation", None)
    if show_layer_activations and activation is not None:
        lines.append(f"activation: {getattr(activation, '__name__', activation)}")
    if show_shapes:
        lines.append(f"output: {shape}" if shape is not None else "output: ?")
    if show_dtype:
        lines.append(f"dtype: {getattr(layer, 'dtype', 'float32')}")
    if show_trainable:
        lines.append(f"trainable: {bool(getattr(layer, 'trainable', True))}")
    return lines


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", dpi=200, show_layer_activations=False, show_trainable=False):
    """The model's layer graph as Graphviz DOT source (a ``str``; Keras returns a pydot
    object — pass this text to ``pydot.graph_from_dot_data`` for one)."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be 'TB', 'LR', 'BT' or 'RL'; received {rankdir!r}")
    entries, edges = _graph(model)
    out = [f'digraph "{_escape(model.name)}" {{',
           f"  graph [rankdir={rankdir}, dpi={int(dpi)}];",
           '  node [shape=box, style="rounded", fontname="Helvetica"];']
    for key, layer, shape in entries:
        text = "\\n".join(_escape(x) for x in _label(layer, shape, show_shapes, show_dtype,
                                                     show_layer_names, show_layer_activations,
                                                     show_trainable))
        out.append(f'  n{key} [label="{text}"];')
    out += [f"  n{a} -> n{b};" for a, b in edges]
    out.append("}")
    return "\n".join(out) + "\n"


def model_to_text(model, show_shapes=True):
    """One line per layer in topological order, with the layers it reads from."""
    entries, edges = _graph(model)
    names = {key: layer.name for key, layer, _ in entries}
    parents = {}
    for a, b in edges:
        parents.setdefault(b, []).append(names[a])
    lines = [f'Model "{model.name}"']
    for key, layer, shape in entries:
        text = f"  {layer.name} ({type(layer).__name__})"
        if show_shapes:
            text += f"  -> {shape}"
        if parents.get(key):
            text += f"  <- {', '.join(parents[key])}"
        lines.append(text)
    return "\n".join(lines) + "\n"


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False):
    """Draw the layer graph to ``to_file``, as ``keras.utils.plot_model``.

    ``.png``/``.svg``/``.pdf``/``.jpg`` need Graphviz's ``dot`` program (``apt install
    graphviz``); ``.dot``/``.gv`` write the DOT source and ``.txt`` a text rendering, with no
    dependency. Returns the path written. ``expand_nested`` is accepted for compatibility;
    nested models are drawn as one node."""
    to_file = os.fspath(to_file)
    suffix = os.path.splitext(to_file)[1].lower().lstrip(".")
    if suffix == "txt":
        return _write(to_file, model_to_text(model, show_shapes=True).encode())
    dot_text = model_to_dot(model, show_shapes, show_dtype, show_layer_names, rankdir, dpi,
                            show_layer_activations, show_trainable)
    if suffix in ("dot", "gv"):
        return _write(to_file, dot_text.encode())
    if suffix not in DRAWN_FORMATS:
        raise ValueError(f"plot_model cannot write {to_file!r}: the file name must end in one "
                         f"of .{', .'.join(DRAWN_FORMATS)} (drawn by Graphviz), .dot/.gv or .txt")
    program = shutil.which("dot")
    if program is None:
        raise ImportError(f"plot_model needs Graphviz's `dot` program to draw {to_file!r} "
                          f"(`apt install graphviz` or `conda install graphviz`); without it, "
                          f"to_file='model.dot' writes the graph source and to_file='model.txt' "
                          f"a text rendering (model.summary() prints the table)")
    fmt = "jpeg" if suffix == "jpg" else suffix
    done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz failed to draw {to_file!r}: "
                           f"{done.stderr.decode(errors='replace').strip()[:500]}")
    return _write(to_file, done.stdout)


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')

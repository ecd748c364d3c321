"""``model.summary()``: Keras 3's table (layer, output shape, params; "Connected to" for a
functional model) and its Total / Trainable / Non-trainable params lines."""
import numpy as np


def readable_size(n_bytes):
    """Keras's sizes: 215.04 KB, 0.00 B (base 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024


def _params(weights):
    count = int(sum(int(np.prod(w.shape)) for w in weights))
    size = int(sum(int(np.prod(w.shape)) * w.dtype.itemsize for w in weights))
    return count, size


def _shape_text(layer):
    shape = getattr(layer, "output_shape", None)
    if shape is None:
        return "?"
    if isinstance(shape, dict):
        return str(shape)
    return str(tuple(shape)) if not (shape and isinstance(shape[0], (tuple, list))) \
        else str([tuple(s) for s in shape])


def _rows(model):
    nodes = getattr(model, "_nodes", None)
    if nodes is None:
        return [[f"{l.name} ({type(l).__name__})", _shape_text(l), f"{l.count_params():,}"]
                for l in model.layers], False
    rows = []
    for node in nodes:
        layer = node.layer
        sources = [f"{t.node.layer.name}[0][{t.index}]" for t in node.input_tensors]
        rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(layer),
                     f"{layer.count_params():,}", ", ".join(sources) or "-"])
    return rows, True


def print_summary(model, print_fn=print):
    if not model.built:
        model.build()
    rows, connected = _rows(model)
    header = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected else [])
    widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(len(header))]

    def line(left, mid, right, fill):
        return left + mid.join(fill * (w + 1) for w in widths) + right

    def row(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(" " + (c.rjust(w - 1) + " " if i == 2 else c.ljust(w)))
        return "│" + "│".join(out) + "│"

    print_fn(f'Model: "{model.name}"')
    print_fn(line("┏", "┳", "┓", "━"))
    print_fn("┃" + "┃".join(" " + (h.rjust(w - 1) + " " if i == 2 else h.ljust(w))
                             for i, (h, w) in enumerate(zip(header, widths))) + "┃")
    print_fn(line("┡", "╇", "┩", "━"))
    for i, r in enumerate(rows):
        print_fn(row(r))
        if i < len(rows) - 1:
            print_fn(line("├", "┼", "┤", "─"))
    print_fn(line("└", "┴", "┘", "─"))
    total = _params(model.weights)
    trainable = _params(model.trainable_weights)
    non_trainable = (total[0] - trainable[0], total[1] - trainable[1])
    # Keras adds the optimizer's variables to the total once it has stepped
    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) \
        else None
    opt = optimizer._summary_params() if hasattr(optimizer, "_summary_params") else None
    if opt is not None:
        total = (total[0] + opt[0], total[1] + opt[1])
    print_fn(f" Total params: {total[0]:,} ({readable_size(total[1])})")
    print_fn(f" Trainable params: {trainable[0]:,} ({readable_size(trainable[1])})")
    print_fn(f" Non-trainable params: {non_trainable[0]:,} ({readable_size(non_trainable[1])})")
    if opt is not None:
        print_fn(f" Optimizer params: {opt[0]:,} ({readable_size(opt[1])})")

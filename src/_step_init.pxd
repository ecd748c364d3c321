# The checks a kept step's __init__ makes before taking its arrays (_step_cost.WsStep,
# _screen.DenseStep), in one place so both refuse alike (header-only, inlined).

cdef inline int check_step_init(str step, str funcs, object keep, object pipeline,
                                Py_ssize_t K) except -1:
    # funcs: the function the step keeps, possessive ("dense_stream's")
    # built once: a second __init__ would replace the arrays a run on another thread
    # reads without the GIL
    if keep is not None:
        raise TypeError(f"a {step} is built once (its structure fixed); make a new one")
    if pipeline is None:
        raise ValueError(f"{step} needs the pipeline's figures ({funcs} "
                         "pipeline=): it gives the chain's completion")
    if K < 0:
        raise ValueError(f"K must be X's rows (>= 0); received {K}")
    return 0


cdef inline const long[:] one_chain(const long[:] L):
    # the pipeline's L: a kept step runs one chain
    if L.shape[0] != 1:
        raise ValueError(f"pipeline: L must have one entry (one chain); received "
                         f"{L.shape[0]}")
    return L


cdef inline tuple with_push(object pipeline):
    # a pipeline= tuple of 7 figures, or 8 with the send queue's ``push`` last
    import numbers
    t = tuple(pipeline)
    if len(t) == 7:
        return t + (-1,)
    if len(t) != 8:
        raise ValueError(f"pipeline must hold 7 figures, or 8 with push; received {len(t)}")
    push = t[7]
    # a fraction would be cut to a whole number silently (the chain takes a long); NumPy's
    # integers are Integral, its bool_ is not
    if isinstance(push, bool) or not isinstance(push, numbers.Integral):
        raise ValueError(f"pipeline's push (its eighth figure) must be a whole number of "
                         f"wavelets, -1 for no send queue; received {push!r}")
    return t

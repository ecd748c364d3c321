"""Every ``get()`` resolver (losses, metrics, optimizers, initializers, regularizers) takes
the same kinds of identifier the same way: they share ``registry.resolve``."""
import numpy as np
import pytest

from wsekern.nn import initializers, losses, metrics, optimizers, registry, regularizers

CASES = [
    # module, base class, a built-in name, the class it gives, a kind word
    (losses, losses.Loss, "MeanSquaredError", losses.MeanSquaredError, "loss"),
    (metrics, metrics.Metric, "accuracy", metrics.Accuracy, "metric"),
    (optimizers, optimizers.Optimizer, "Adam", optimizers.Adam, "optimizer"),
    (initializers, initializers.Initializer, "zeros", initializers.Zeros, "initializer"),
    (regularizers, regularizers.Regularizer, "l2", regularizers.L2, "regularizer"),
]


@pytest.mark.parametrize("module, base, name, cls, kind", CASES, ids=[c[4] for c in CASES])
def test_names_classes_instances_and_dicts(module, base, name, cls, kind):
    by_name = module.get(name)
    assert type(by_name) is cls
    assert module.get(by_name) is by_name
    assert type(module.get(cls)) is cls
    assert type(module.get(module.serialize(by_name))) is cls
    with pytest.raises(ValueError, match=f"unknown {kind} 'no-such-{kind}'; available: "):
        module.get(f"no-such-{kind}")


@pytest.mark.parametrize("module, base, name, cls, kind", CASES, ids=[c[4] for c in CASES])
def test_a_registered_subclass_is_found_by_name_and_instantiated(module, base, name, cls, kind):
    sub = type(f"Custom{kind.title()}", (cls,), {})
    key = f"ResolverTest>Custom{kind.title()}"
    with registry.custom_object_scope({key: sub}):
        assert type(module.get(key)) is sub
    with pytest.raises(ValueError, match=f"unknown {kind}"):
        module.get(key)


def test_callables_are_taken_where_keras_takes_them():
    def per_sample(y_true, y_pred):
        return np.abs(y_true - y_pred).mean(axis=-1)

    assert isinstance(losses.as_loss(per_sample), losses.LossFunctionWrapper)
    assert isinstance(metrics.get(per_sample), metrics.MeanMetricWrapper)
    assert initializers.get(np.zeros) is np.zeros
    assert regularizers.get(np.sum) is np.sum
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get(per_sample)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get(dict)            # a class that is not a Loss is not a loss function

"""The lead's small fixes of session 17, each against what the code said before."""
from types import SimpleNamespace

from wsekern.wafer import validate


def test_an_empty_run_is_not_called_fabric_bound():
    """A 0-cycle run (bottleneck "none": an empty operand) sent nothing over the fabric."""
    case = validate.Case("s", "uniform", 0.5, 0.5, batch=4, region=2, mapping="auto",
                         dtype="float32")
    for bottleneck, want in [("none", "latency-bound"), ("latency", "latency-bound"),
                             ("overhead", "compute-bound"), ("fabric", "fabric-bound")]:
        names = validate.regime(case, SimpleNamespace(bottleneck=bottleneck))
        assert names == [want], (bottleneck, names)

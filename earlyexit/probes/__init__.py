"""Loss-landscape probes: pure measurements of a model at one point.

>>> from earlyexit.probes import measure
>>> values = measure(model, loss_fn, batches, optimizer=opt)   # doctest: +SKIP
>>> values["hessian_top_eigenvalue"], values.diagnostics["forward_passes"]  # doctest: +SKIP
"""

from ._critical import CriticalStep, critical_step
from ._lanczos import LanczosResult, lanczos
from ._objective import probing
from ._reference import measure_reference, power_iteration
from ._measure import PROBE_NAMES, ProbeResult, ProbeSettings, WarmStart, measure
from ._trace import TraceEstimate, deflated_hutchinson
from ._update import update_direction

__all__ = [
    "PROBE_NAMES",
    "CriticalStep",
    "LanczosResult",
    "ProbeResult",
    "ProbeSettings",
    "TraceEstimate",
    "WarmStart",
    "critical_step",
    "deflated_hutchinson",
    "lanczos",
    "measure",
    "measure_reference",
    "power_iteration",
    "probing",
    "update_direction",
]

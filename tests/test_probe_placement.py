"""Every tensor the probes create is placed on purpose: checked on the CPU, for any device.

A probe that builds a tensor with a factory (``torch.tensor``, ``torch.zeros``, ``torch.randn``...)
without naming its device puts it on the default device, the CPU, whatever the model's device. On a
CPU machine that is invisible; on a GPU it fails (the Lanczos Ritz vector, built on the CPU and
multiplied with a basis on the GPU, failed every probe of three sweeps logged on a GPU). The trap
below fails any such call made from this package's code, so the CPU tests catch what only a GPU
would show. A second test runs every probe on a float64 model: a tensor created in another dtype
than the parameters' meets them in a product and fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import earlyexit
from earlyexit.data import load_task
from earlyexit.models import load_model, load_tokenizer
from earlyexit.probes import PROBE_NAMES, ProbeSettings, deflated_hutchinson, lanczos, measure
from earlyexit.probes import measure_reference, power_iteration
from earlyexit.training import collate

PACKAGE = Path(earlyexit.__file__).resolve().parent
TORCH = Path(torch.__file__).resolve().parent
REFERENCE_NAMES = ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "hessian_top_eigenvalue",
                   "hessian_trace", "critical_sharpness")
FACTORIES = {
    torch.tensor, torch.as_tensor, torch.scalar_tensor, torch.zeros, torch.ones, torch.empty, torch.full,
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.arange, torch.linspace, torch.logspace,
    torch.eye, torch.from_numpy,
}


class DevicelessFactoryTrap(TorchFunctionMode):
    """Records every tensor factory called from the package without an explicit ``device=``."""

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            copies_a_tensor = func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)
            caller = _first_caller_outside_torch()
            if not copies_a_tensor and caller is not None and PACKAGE in caller[0].parents:
                self.hits.append(f"{func.__name__} at {caller[0].relative_to(PACKAGE.parent)}:{caller[1]}")
        return func(*args, **kwargs)


def _first_caller_outside_torch():
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if TORCH not in path.parents and path != Path(__file__).resolve():
            return path, frame.f_lineno
        frame = frame.f_back
    return None


def _bert_loss(model, batch):
    return model(**batch).loss


@pytest.fixture(scope="module")
def bert_batches():
    task = load_task("sst2", "earlyexit:sst2-2k")
    tok = load_tokenizer("earlyexit:tiny-bert")
    rows = task.train[:24]
    batches = [collate(tok, rows[i:i + 8], 64) for i in range(0, 24, 8)]
    return batches, [collate(tok, task.dev[:8], 64)]


def _trained(batches, dtype=torch.float32):
    model = load_model("earlyexit:tiny-bert", 2, seed=0).to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for b in batches:
        opt.zero_grad()
        _bert_loss(model, b).backward()
        opt.step()
    return model, opt


def test_the_trap_catches_a_factory_without_a_device():
    # The bug as it was: the Lanczos tridiagonal built with torch.tensor and no device.
    trap = DevicelessFactoryTrap()
    with trap:
        exec(compile("import torch\nT = torch.tensor([1.0], dtype=torch.float64)\n",
                     str(PACKAGE / "probes" / "_lanczos.py"), "exec"))
    assert trap.hits and trap.hits[0].startswith("tensor at earlyexit/probes/_lanczos.py")


def test_every_probe_names_the_device_of_every_tensor_it_creates(bert_batches):
    batches, reference = bert_batches
    model, opt = _trained(batches)
    trap = DevicelessFactoryTrap()
    with trap:
        cold = measure(model, _bert_loss, batches, names=PROBE_NAMES, optimizer=opt,
                       reference_batches=reference, seed=1)
        measure(model, _bert_loss, batches, names=PROBE_NAMES, optimizer=opt, reference_batches=reference,
                seed=2, warm_start=cold.warm_start, settings=ProbeSettings(trace_vectors=2))
        measure_reference(model, _bert_loss, batches[:2], names=REFERENCE_NAMES, power_iterations=3,
                          hutchinson_vectors=2)
    assert trap.hits == []


def test_linear_algebra_helpers_follow_their_inputs():
    trap = DevicelessFactoryTrap()
    h = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    with trap:
        start = torch.ones(5, dtype=torch.float64, device="cpu")
        result = lanczos(lambda v: h @ v, start, max_iter=5)
        est = deflated_hutchinson(lambda v: h @ v, None, 0.0, dim=5, vectors=3,
                                  generator=torch.Generator().manual_seed(0), dtype=torch.float64, device="cpu")
        eig, _ = power_iteration(lambda v: h.float() @ v, 5, torch.Generator().manual_seed(0), iterations=50,
                                 device="cpu")
    assert trap.hits == []
    assert result.top_eigenvector.dtype == torch.float64
    assert result.top_eigenvalue == pytest.approx(5.0, rel=1e-9)
    assert est.value == pytest.approx(15.0, abs=1e-9)  # z^T H z is the trace for every +-1 vector of a diagonal H
    assert eig == pytest.approx(5.0, rel=1e-3)


def test_every_probe_runs_in_the_parameters_dtype(bert_batches):
    batches, reference = bert_batches
    model, opt = _trained([{k: v for k, v in b.items()} for b in batches], dtype=torch.float64)
    r = measure(model, _bert_loss, batches, names=PROBE_NAMES, optimizer=opt, reference_batches=reference, seed=1)
    assert list(r) == list(PROBE_NAMES)
    assert all(torch.isfinite(torch.tensor(v)) for v in r.values())
    assert r.warm_start.eigenvector.dtype == torch.float64

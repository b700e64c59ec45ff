"""measure() leaves no trace, validates its input, and runs on a tiny BERT in both modes."""

import copy

import pytest
import torch
from torch import nn

from earlyexit.data import load_task
from earlyexit.training import collate
from earlyexit.models import load_model, load_tokenizer
from earlyexit.probes import PROBE_NAMES, ProbeSettings, deflated_hutchinson, lanczos, measure, update_direction
from earlyexit.probes._update import simulated_update_direction


@pytest.fixture(scope="module")
def tiny_bert():
    task = load_task("sst2", "earlyexit:sst2-2k")
    tok = load_tokenizer("earlyexit:tiny-bert")
    rows = task.train[:24]
    batches = [collate(tok, rows[i:i + 8], 64) for i in range(0, 24, 8)]
    reference = [collate(tok, task.dev[:8], 64)]
    return batches, reference


def _bert_loss(model, batch):
    return model(**batch).loss


def _snapshot(model, optimizer):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [m.training for m in model.modules()],
        torch.get_rng_state(),
        copy.deepcopy(optimizer.state_dict()),
    )


def _assert_same(before, after):
    sd0, g0, modes0, rng0, opt0 = before
    sd1, g1, modes1, rng1, opt1 = after
    assert sd0.keys() == sd1.keys()
    for k in sd0:
        assert torch.equal(sd0[k], sd1[k]), k
    for a, b in zip(g0, g1):
        assert (a is None and b is None) or torch.equal(a, b)
    assert modes0 == modes1
    assert torch.equal(rng0, rng1)
    assert opt0["param_groups"] == opt1["param_groups"]
    for k, st in opt0["state"].items():
        for name, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt1["state"][k][name])), (k, name)


@pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
def test_tiny_bert_all_probes_leave_no_trace(tiny_bert, mode):
    batches, reference = tiny_bert
    model = load_model("earlyexit:tiny-bert", 2, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model.train()
    for b in batches:  # a few real steps so the optimizer has state
        opt.zero_grad()
        _bert_loss(model, b).backward()
        opt.step()
    model.train(mode != "eval")
    if mode == "mixed":
        model.bert.encoder.eval()
    next(model.parameters()).grad = torch.ones_like(next(model.parameters()))
    before = _snapshot(model, opt)
    r = measure(model, _bert_loss, batches, names=PROBE_NAMES, optimizer=opt, reference_batches=reference, seed=3)
    _assert_same(before, _snapshot(model, opt))
    assert list(r) == list(PROBE_NAMES)  # the opt-in Fisher trace too, with the default label sampler
    assert r["fisher_trace"] > 0
    for name, value in r.items():
        assert torch.isfinite(torch.tensor(value)), name
    assert r["gradient_norm"] > 0 and r["gradient_variance"] > 0
    assert r["hessian_top_eigenvalue"] > 0 and r["critical_sharpness"] > 0
    assert r.diagnostics["critical_sharpness_forward_passes"] >= 1


def test_train_and_eval_mode_give_the_same_values(tiny_bert):
    batches, _ = tiny_bert
    model = load_model("earlyexit:tiny-bert", 2, seed=1)
    names = ["loss", "gradient_norm", "hessian_top_eigenvalue"]
    model.eval()
    a = measure(model, _bert_loss, batches, names=names)
    model.train()
    b = measure(model, _bert_loss, batches, names=names)
    assert dict(a) == pytest.approx(dict(b), rel=1e-5)


def test_probes_are_reproducible_from_the_seed(tiny_bert):
    batches, _ = tiny_bert
    model = load_model("earlyexit:tiny-bert", 2, seed=2)
    a = measure(model, _bert_loss, batches, names=["hessian_trace"], seed=5)
    b = measure(model, _bert_loss, batches, names=["hessian_trace"], seed=5)
    assert a["hessian_trace"] == b["hessian_trace"]


def test_input_errors_name_the_problem():
    model = nn.Linear(2, 1)
    loss_fn = lambda m, b: m(b).pow(2).mean()  # noqa: E731
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="unknown probe"):
        measure(model, loss_fn, [x], names=["hessian_determinant"])
    with pytest.raises(ValueError, match="at least one batch"):
        measure(model, loss_fn, [])
    with pytest.raises(ValueError, match="at least two batches"):
        measure(model, loss_fn, [x], names=["gradient_variance"])
    with pytest.raises(ValueError, match="reference_batches"):
        measure(model, loss_fn, [x], names=["relative_critical_sharpness"])
    with pytest.raises(TypeError, match="scalar"):
        measure(nn.Linear(2, 2), lambda m, b: m(b), [x], names=["loss"])
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        measure(frozen, loss_fn, [x], names=["loss"])
    with pytest.raises(ValueError, match="trace_vectors must be at least 0"):
        ProbeSettings(trace_vectors=-1)
    ProbeSettings(trace_vectors=0)


def test_lanczos_matches_eigh_and_reports_its_residual():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(50, 50, generator=gen, dtype=torch.float64)
    A = (M + M.T) / 2
    evals = torch.linalg.eigvalsh(A)
    r = lanczos(lambda v: A @ v, torch.randn(50, generator=gen, dtype=torch.float64), max_iter=50, rtol=0.0)
    assert r.top_eigenvalue == pytest.approx(float(evals[-1]), rel=1e-8)
    assert float(torch.trace(r.tridiagonal)) == pytest.approx(float(evals.sum()), abs=1e-6)
    with pytest.raises(ValueError, match="max_iter must be at least 1"):
        lanczos(lambda v: v, torch.ones(3), max_iter=0)
    with pytest.raises(ValueError, match="non-zero"):
        lanczos(lambda v: v, torch.zeros(3), max_iter=2)


def test_deflated_hutchinson_is_exact_on_a_full_basis():
    A = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    est = deflated_hutchinson(lambda v: A @ v, torch.eye(5, dtype=torch.float64), 15.0, dim=5, vectors=4,
                              generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert est.value == 15.0 and est.stderr == 0.0 and est.vectors == 0


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1),
    lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=0.1),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: torch.optim.RMSprop(ps, lr=1e-3),
])
def test_update_direction_closed_form_equals_simulation(make):
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(4)), nn.Parameter(torch.randn(2, 3))]
    opt = make(params)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in params]
        a = update_direction(opt, params, grads)
        b = simulated_update_direction(opt, params, grads)
        for x, y in zip(a, b):
            assert torch.allclose(x, y, atol=1e-6)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()


def test_on_a_gpu_each_part_is_timed_with_the_queue_drained(tiny_bert, monkeypatch):
    """A part's seconds are its kernels' time: the model's GPUs are synchronized before and after each part, and
    no other device is touched (a worker pinned to one GPU opens no context on the others)."""
    from earlyexit.probes import _measure

    batches, _ = tiny_bert
    clocks = []
    real = _measure._Clock
    monkeypatch.setattr(_measure, "_Clock", lambda diag, devices=(): clocks.append(tuple(devices)) or real(diag, devices))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("a CPU model waited on a GPU"))
    model = load_model("earlyexit:tiny-bert", 2, seed=0)
    result = measure(model, _bert_loss, batches, names=("loss", "gradient_norm", "hessian_top_eigenvalue"), seed=0)
    assert clocks == [()] and any(k.startswith("seconds_") for k in result.diagnostics)
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    diag = {}
    clock = real(diag, [torch.device("cuda", 1)])
    with clock("lanczos"):
        assert synced == [torch.device("cuda", 1)]
    assert synced == [torch.device("cuda", 1)] * 2 and diag["seconds_lanczos"] >= 0

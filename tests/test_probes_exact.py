"""Every probe against an exact computation on a model small enough to form its Hessian.

Tolerances: the top eigenvalue within 2% (Lanczos on a 67-dimensional
problem converges far tighter; 2% is the bar the probes are held to); the trace within 3
of the estimator's own standard errors (a 3-sigma bound: with a fixed seed
the test is deterministic, and the bound is what the estimator promises);
critical sharpness within 7% of a dense line search (the search stops at a
3% bracket) and, on a quadratic, of the closed form u^T H u / (-g^T u).
"""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from earlyexit.probes import ProbeSettings, measure


def _mlp_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    X = torch.randn(40, 5, dtype=torch.float64)
    Y = torch.randint(0, 3, (40,))
    batches = [(X[i:i + 10], Y[i:i + 10]) for i in range(0, 40, 10)]
    return model, batches


def _loss_fn(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def _flat_objective(model, batches):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def L(flat, bs=batches):
        pieces = torch.split(flat, [math.prod(s) for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, pieces, shapes)}
        return sum(_loss_fn(lambda x: functional_call(model, params, (x,)), b) for b in bs) / len(bs)

    return L, flat0


@pytest.fixture(scope="module")
def exact():
    model, batches = _mlp_problem()
    L, flat0 = _flat_objective(model, batches)
    H = torch.autograd.functional.hessian(L, flat0)
    g = torch.autograd.functional.jacobian(L, flat0)
    grads = [torch.autograd.functional.jacobian(lambda f, b=b: L(f, [b]), flat0) for b in batches]
    return model, batches, L, flat0, H, g, grads


def test_first_order_probes_match_autograd(exact):
    model, batches, L, flat0, H, g, grads = exact
    r = measure(model, _loss_fn, batches, names=["loss", "gradient_norm", "gradient_variance", "sam_sharpness"])
    assert r["loss"] == pytest.approx(float(L(flat0)), rel=1e-10)
    assert r["gradient_norm"] == pytest.approx(float(g.norm()), rel=1e-10)
    variance = sum(float(((gb - g) ** 2).sum()) for gb in grads) / len(grads)
    assert r["gradient_variance"] == pytest.approx(variance, rel=1e-10)
    sam = float(L(flat0 + 0.05 * g / g.norm()) - L(flat0))
    assert r["sam_sharpness"] == pytest.approx(sam, rel=1e-8)


def test_top_eigenvalue_within_two_percent(exact):
    model, batches, *_, H, _, _ = exact
    top = float(torch.linalg.eigvalsh(H)[-1])
    for seed in range(3):
        r = measure(model, _loss_fn, batches, names=["hessian_top_eigenvalue"], seed=seed)
        assert abs(r["hessian_top_eigenvalue"] - top) <= 0.02 * abs(top)
        assert r.diagnostics["lanczos_residual"] <= 0.01 * abs(top) + 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_trace_within_its_own_error_bound(exact, seed):
    model, batches, *_, H, _, _ = exact
    settings = ProbeSettings(lanczos_max_iter=5, trace_vectors=30)
    r = measure(model, _loss_fn, batches, names=["hessian_trace"], seed=seed, settings=settings)
    stderr = r.diagnostics["hessian_trace_stderr"]
    assert stderr > 0
    assert abs(r["hessian_trace"] - float(torch.trace(H))) <= 3 * stderr


def _dense_critical(L, flat0, u, etas):
    """The first step on the grid ``etas`` at which the loss along ``u`` rises above its value at 0 (every
    point evaluated, in one vectorized pass)."""
    base = float(L(flat0))
    etas = torch.as_tensor(etas, dtype=flat0.dtype)
    rises = torch.nonzero(torch.func.vmap(L)(flat0 + etas[:, None] * u) > base)
    if not len(rises):
        raise AssertionError("no rise found on the grid")
    return float(etas[rises[0, 0]])


def test_critical_sharpness_against_dense_line_search_gradient(exact):
    model, batches, L, flat0, H, g, _ = exact
    r = measure(model, _loss_fn, batches, names=["critical_sharpness"])
    eta = _dense_critical(L, flat0, -g, torch.linspace(1e-3, 20, 20000).tolist())
    assert r["critical_sharpness"] == pytest.approx(2 / eta, rel=0.07)
    assert r.diagnostics["critical_sharpness_forward_passes"] <= 10


def test_critical_sharpness_along_adamw_update():
    model, batches = _mlp_problem(seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(3):  # give the optimizer some state
        opt.zero_grad()
        sum(_loss_fn(model, b) for b in batches).backward()
        opt.step()
    opt.zero_grad()
    L2, flat1 = _flat_objective(model, batches)
    g1 = torch.autograd.functional.jacobian(L2, flat1)
    # The update AdamW would apply at lr=1, written out.
    state = [opt.state[p] for p in model.parameters()]
    beta1, beta2 = opt.param_groups[0]["betas"]
    t = float(state[0]["step"]) + 1
    pieces = torch.split(g1, [p.numel() for p in model.parameters()])
    u = []
    for p, s, gp in zip(model.parameters(), state, pieces):
        gp = gp.view(p.shape)
        m = beta1 * s["exp_avg"] + (1 - beta1) * gp
        v = beta2 * s["exp_avg_sq"] + (1 - beta2) * gp * gp
        u.append((-(m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + 1e-8) - 0.01 * p.detach()).reshape(-1))
    u = torch.cat(u)
    r = measure(model, _loss_fn, batches, names=["critical_sharpness"], optimizer=opt)
    eta = _dense_critical(L2, flat1, u, torch.logspace(-5, 1, 30000).tolist())
    assert r["critical_sharpness"] == pytest.approx(2 / eta, rel=0.07)


class Quadratic(nn.Module):
    """L(theta) = 0.5 theta^T A theta + b^T theta, independent of the batch."""

    def __init__(self, A, b, theta):
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("b", b)
        self.theta = nn.Parameter(theta.clone())

    def forward(self, _batch):
        return 0.5 * self.theta @ self.A @ self.theta + self.b @ self.theta


def _quadratic(seed=0, n=12):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    evals = torch.linspace(-1.0, 5.0, n, dtype=torch.float64)
    A = Q @ torch.diag(evals) @ Q.T
    return Quadratic(A, torch.randn(n, generator=gen, dtype=torch.float64),
                     torch.randn(n, generator=gen, dtype=torch.float64)), A, evals


def test_quadratic_closed_forms():
    model, A, evals = _quadratic()
    loss_fn = lambda m, b: m(b)  # noqa: E731
    r = measure(model, loss_fn, [0, 1], names=["hessian_top_eigenvalue", "hessian_trace", "critical_sharpness"],
                settings=ProbeSettings(lanczos_max_iter=12, lanczos_rtol=1e-12))
    assert r["hessian_top_eigenvalue"] == pytest.approx(float(evals[-1]), rel=1e-8)
    assert r["hessian_trace"] == pytest.approx(float(evals.sum()), rel=1e-8, abs=1e-8)
    g = A @ model.theta.detach() + model.b
    u = -g
    closed = float(u @ A @ u / (-(g @ u)))
    assert r["critical_sharpness"] == pytest.approx(closed, rel=0.07)
    # A quadratic is where the secant search is exact: few passes.
    assert r.diagnostics["critical_sharpness_forward_passes"] <= 6


def test_quadratic_critical_sharpness_with_sgd_momentum():
    model, A, _ = _quadratic(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(None).backward()
        opt.step()
    opt.zero_grad()
    buf = opt.state[model.theta]["momentum_buffer"]
    theta = model.theta.detach()
    g = A @ theta + model.b
    u = -(0.9 * buf + g)
    r = measure(model, lambda m, b: m(b), [0], names=["critical_sharpness"], optimizer=opt)
    assert r["critical_sharpness"] == pytest.approx(float(u @ A @ u / (-(g @ u))), rel=0.07)


def test_relative_critical_sharpness_uses_the_reference_loss(exact):
    model, batches, L, flat0, H, g, _ = exact
    ref = batches[:2]
    r = measure(model, _loss_fn, batches[2:], names=["relative_critical_sharpness"], reference_batches=ref)
    L_dir, _ = _flat_objective(model, batches[2:])
    g_dir = torch.autograd.functional.jacobian(L_dir, flat0)
    L_ref, _ = _flat_objective(model, ref)
    eta = _dense_critical(L_ref, flat0, -g_dir, torch.logspace(-4, 2, 30000).tolist())
    assert r["relative_critical_sharpness"] == pytest.approx(2 / eta, rel=0.07)


def test_warm_start_reuses_the_eigenvector_and_eta(exact):
    model, batches, *_, H, _, _ = exact
    first = measure(model, _loss_fn, batches)
    again = measure(model, _loss_fn, batches, warm_start=first.warm_start)
    assert again.diagnostics["lanczos_warm"] == 1.0
    assert again.diagnostics["lanczos_iterations"] <= 2
    assert again.diagnostics["critical_sharpness_forward_passes"] <= first.diagnostics[
        "critical_sharpness_forward_passes"]
    assert again["hessian_top_eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=0.02)


def _sample_tuple_labels(model, batch, generator):
    """The Fisher probe's label sampler for (inputs, labels) tuples."""
    from earlyexit.probes._fisher import draw

    with torch.no_grad():
        logits = model(batch[0])
    return (batch[0], draw(logits, generator)), len(batch[1])


def test_fisher_trace_is_unbiased_for_the_exact_fisher(exact):
    model, batches, L, flat0, H, g, grads = exact
    # Exact: tr F = mean_i sum_y p(y|x_i) |grad log p(y|x_i)|^2, every example and class enumerated.
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def log_p(flat, x, y):
        pieces = torch.split(flat, [math.prod(s) for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, pieces, shapes)}
        return torch.log_softmax(functional_call(model, params, (x[None],)), -1)[0, y]

    X = torch.cat([b[0] for b in batches])
    exact_trace = 0.0
    for x in X:
        probs = torch.softmax(model(x[None]), -1)[0].detach()
        for y in range(3):
            gy = torch.autograd.functional.jacobian(lambda f: log_p(f, x, y), flat0)
            exact_trace += float(probs[y]) * float(gy @ gy)
    exact_trace /= len(X)
    # For softmax cross-entropy the Fisher is the Gauss-Newton part of the Hessian: the same order.
    assert 0 < exact_trace < 10 * float(torch.trace(H))
    draws = [measure(model, _loss_fn, batches, names=["fisher_trace"], seed=s,
                     label_sampler=_sample_tuple_labels) for s in range(300)]
    values = torch.tensor([d["fisher_trace"] for d in draws], dtype=torch.float64)
    stderr = float(values.std() / math.sqrt(len(values)))
    assert abs(float(values.mean()) - exact_trace) < 4 * stderr  # unbiased: within 4 standard errors of 300 draws
    one = draws[0]
    assert one.diagnostics["fisher_trace_stderr"] > 0 and "seconds_fisher" in one.diagnostics
    assert set(one) == {"fisher_trace"}


def test_fisher_trace_needs_labels_it_can_sample(exact):
    model, batches, *_ = exact
    with pytest.raises(ValueError, match="label_sampler"):
        measure(model, _loss_fn, batches, names=["fisher_trace"])
    # Named only: the default probe set is unchanged.
    assert "fisher_trace" not in measure(model, _loss_fn, batches, names=None)

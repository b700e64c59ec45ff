"""Names every layer shares: the probes that need Hessian-vector products, and the dev metrics a
checkpoint records beside its probes.

Torch-free, so that the scorer (a scikit-learn estimator) can use them without importing the probes.
"""

HESSIAN_PROBES = frozenset({"hessian_top_eigenvalue", "hessian_trace"})
"""Probes that need Hessian-vector products (the costly ones)."""

DEV_METRICS = ("dev_accuracy", "dev_loss", "dev_metric")
"""What a dev evaluation measures (``dev_metric``: the study's metric, see ``earlyexit.metrics``); in a
scorer's names or a measurement plan, they ask for one."""

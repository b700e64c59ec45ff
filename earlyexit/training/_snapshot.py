"""A run's state between two steps, written to a file so that a killed run goes on where it stopped.

One file per run holds everything the rest of the run depends on: the model's, the optimizer's, the schedule's
and the gradient scaler's states, the random generators (torch's global one, which drives dropout, and the
training batches' own), the probes' warm start, the checkpoints measured so far and the loop's clocks. A run
resumed from it on the same device and torch takes the same steps as one that was never stopped: on the CPU with
the same number of threads, to the bit (``tests/test_snapshot.py``); with another number of threads, up to the
rounding of sums split another way (so the thread count does not stop a resume).

The file is written whole or not at all (a temporary file, then a rename), and read with
``torch.load(weights_only=True)``: tensors and plain Python values only, so loading it runs no code. A file
written for another configuration or another torch is not resumed: the run starts from step 0 and overwrites it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import torch

SNAPSHOT_VERSION = 1


def fingerprint(config, plan, device: torch.device) -> str:
    """What a snapshot must match to be resumed: the configuration, the plan, the device and torch's version."""
    steps = None if plan is None else sorted((int(s), sorted(n)) for s, n in plan.items())
    return repr((dataclasses.asdict(config), steps, str(device), torch.__version__))


def save(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` whole: a reader finds the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"version": SNAPSHOT_VERSION, **state}, tmp)
    os.replace(tmp, path)


def load(path: Path, expected: str) -> dict | None:
    """The state saved at ``path`` when it exists and was written for ``expected`` (a :func:`fingerprint`);
    else None, with a warning that says why when there was a file."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means starting over, said once
        warnings.warn(f"{path}: not resumed, the file cannot be read ({type(exc).__name__}: {exc}); "
                      "the run starts from step 0", stacklevel=3)
        return None
    if state.get("version") != SNAPSHOT_VERSION or state.get("fingerprint") != expected:
        warnings.warn(f"{path}: not resumed, it was written for another configuration, device or torch; "
                      "the run starts from step 0", stacklevel=3)
        return None
    return state


def rng_state(device: torch.device) -> dict:
    """torch's global generators: the CPU's, and the device's where it has its own."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def capture(key: str, *, step: int, model, optimizer, scheduler, scaler, batcher, warm, checkpoints: list,
            losses: list[float], train_seconds: float, probe_seconds: float, elapsed: float,
            device: torch.device) -> dict:
    """The loop's state at ``step``, between two steps: what :func:`restore` needs, as tensors and plain values."""
    return {
        "fingerprint": key, "step": step,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": rng_state(device), "batches": batcher.state_dict(),
        "warm": {"eigenvector": None if warm.eigenvector is None else warm.eigenvector.detach().cpu(),
                 "eta_c": warm.eta_c, "relative_eta_c": warm.relative_eta_c},
        "checkpoints": [dataclasses.asdict(cp) for cp in checkpoints],
        "losses": list(losses), "train_seconds": train_seconds, "probe_seconds": probe_seconds,
        "elapsed": elapsed,
    }


def restore(state: dict, *, model, optimizer, scheduler, scaler, batcher, device: torch.device) -> dict:
    """Load ``state`` into the run's objects; the loop's own values (step, warm start as a dict, checkpoints as
    dicts, losses, clocks) come back for the loop to take."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    batcher.load_state_dict(state["batches"])
    set_rng_state(state["rng"], device)
    warm = dict(state["warm"])
    if warm["eigenvector"] is not None:
        warm["eigenvector"] = warm["eigenvector"].to(device)
    return {"step": int(state["step"]), "warm": warm, "checkpoints": state["checkpoints"],
            "losses": list(state["losses"]), "train_seconds": float(state["train_seconds"]),
            "probe_seconds": float(state["probe_seconds"]), "elapsed": float(state["elapsed"])}

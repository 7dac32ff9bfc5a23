"""HGQ training: task loss + β·EBOPs + γ·Σf, Adam with a separate group for bit parameters."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import TrainConfig
from .layers import ebops, frac_bits_sum, quantized_mlp, reset_ranges
from .quantizers import clamp_frac_bits


@dataclass
class TrainResult:
    model: nn.Sequential
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Weights and biases in one Adam group, fractional-bit parameters in another."""
    bits = [p for n, p in model.named_parameters() if n.endswith("frac_bits")]
    ids = {id(p) for p in bits}
    weights = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": weights, "lr": config.learning_rate},
        {"params": bits, "lr": config.bits_learning_rate},
    ]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return correct


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig | None = None,
    *,
    quiet: bool = False,
) -> TrainResult:
    """Train an HGQ MLP for classification; returns the model and one history row per epoch.

    Each epoch resets the observed activation ranges, so the integer bits follow the weights.
    Progress is a bar over epochs on stderr (``quiet`` hides it).
    """
    config = config or TrainConfig()
    if len(x_train) == 0:
        raise ValueError("x_train is empty")
    if not np.all(np.isfinite(x_train)):
        raise ValueError("x_train contains NaN or inf")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    model = quantized_mlp(
        x_train.shape[1],
        config.hidden,
        n_classes,
        init_bits=config.init_bits,
        init_frac_bits=config.init_frac_bits,
    ).to(device)
    optimizer = torch.optim.Adam(parameter_groups(model, config))
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=torch.int64, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.int64, device=device)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    result = TrainResult(model)
    bar = tqdm(range(config.epochs), desc="train", disable=quiet, file=sys.stderr, unit="epoch")
    try:
        for epoch in bar:
            beta = config.beta(epoch, config.epochs)
            reset_ranges(model)
            order = torch.randperm(len(xt), generator=generator).to(device)
            total = 0.0
            for first in range(0, len(xt), config.batch_size):
                batch = order[first : first + config.batch_size]
                task = F.cross_entropy(model(xt[batch]), yt[batch])
                resource = ebops(model)
                loss = task + beta * resource + config.gamma * frac_bits_sum(model)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss.item()} in epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                clamp_frac_bits(model)
                total += task.item() * len(batch)
            row = {
                "epoch": epoch,
                "beta": beta,
                "loss": total / len(xt),
                "ebops": float(resource.detach()),
                "val_accuracy": accuracy(model, xv, yv),
            }
            result.history.append(row)
            bar.set_postfix(
                loss=f"{row['loss']:.3f}",
                acc=f"{row['val_accuracy']:.3f}",
                ebops=f"{row['ebops']:.0f}",
            )
    finally:
        torch.set_num_threads(previous_threads)
    model.cpu()
    result.seconds = time.perf_counter() - start
    return result

"""HGQ training: task loss + β·EBOPs + γ·Σf, Adam with a separate group for bit parameters.

Tasks: ``"classification"`` (cross-entropy; metric accuracy, higher is better) and
``"regression"`` (mean squared error; metric *resolution*, the RMS of prediction − target,
lower is better). Every epoch offers (validation metric, EBOPs) to a
:class:`~hgq_rtl.train.pareto.ParetoKeeper`; with a ``checkpoint_dir`` every completed epoch is
checkpointed atomically and a killed run continues with ``resume=True``.
"""

from __future__ import annotations

import math
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import checkpoint, threads
from .config import TrainConfig
from .cost import ebops, frac_bits_sum
from .layers import reset_ranges
from .metrics import METRICS, resolve_task, task_metrics
from .models import build_model
from .pareto import FRONT_DIR, FrontStore, ParetoKeeper, ParetoPoint
from .quantizers import FRAC_BITS_LIMITS

_EVAL_BATCH = 4096


class TrainingDiverged(FloatingPointError, ValueError):
    """The loss, a metric or a parameter became NaN or infinite; training stopped."""


@dataclass
class TrainResult:
    """A trained model, one history row per epoch, and the kept Pareto points.

    ``front`` are the keeper's points (cheapest first); :meth:`front_state` gives each one's
    model state and :meth:`make_model` an untrained network to load it into.
    """

    model: nn.Sequential
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    task: str = "classification"
    front: tuple[ParetoPoint, ...] = ()
    config: TrainConfig = field(default_factory=TrainConfig)
    input_shape: tuple[int, ...] = ()
    n_outputs: int = 0
    store: FrontStore = field(default_factory=FrontStore)

    def front_state(self, epoch: int) -> dict:
        return self.store.get(epoch)

    def make_model(self) -> nn.Sequential:
        return build_model(self.config, self.input_shape, self.n_outputs)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as given,
    refused (ValueError, one line naming ``--device``) when this machine cannot run it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {name}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Weights and biases in one Adam group, fractional-bit parameters in another."""
    bits = [p for n, p in model.named_parameters() if n.endswith("frac_bits")]
    ids = {id(p) for p in bits}
    weights = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": weights, "lr": config.learning_rate},
        {"params": bits, "lr": config.bits_learning_rate},
    ]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam on :func:`parameter_groups`, as one fused kernel for all parameters where torch has
    one for the model's device (CPU and CUDA; the multi-tensor ``foreach`` path elsewhere)."""
    device = next(model.parameters()).device
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(parameter_groups(model, config), fused=fused, foreach=not fused)


def _clamp_bits(groups: list[dict]) -> None:
    """:func:`clamp_frac_bits` on the bit group of :func:`parameter_groups`, two operations."""
    bits = groups[1]["params"]
    if not bits:
        return
    with torch.no_grad():
        torch._foreach_clamp_min_(bits, FRAC_BITS_LIMITS[0])
        torch._foreach_clamp_max_(bits, FRAC_BITS_LIMITS[1])


def eager_step(model: nn.Module, optimizer: torch.optim.Adam, loss_function, gamma: float):
    """One eager training step: forward, loss = task + β·EBOPs + γ·Σf, backward, Adam, clamp of
    the fractional bits. Returns ``run(x, y, beta) -> (loss, task loss)``, both detached 0-d
    tensors (nothing is read back to the host)."""

    def run(x: torch.Tensor, y: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        task_loss = loss_function(model(x), y)
        loss = task_loss + beta * ebops(model) + gamma * frac_bits_sum(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _clamp_bits(optimizer.param_groups)
        return loss.detach(), task_loss.detach()

    return run


def _outputs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(x[s : s + _EVAL_BATCH]) for s in range(0, len(x), _EVAL_BATCH)]
    finally:
        model.train(was_training)
    return torch.cat(parts).double().cpu().numpy()


def _check_arrays(x_train, y_train, x_val, y_val, n_outputs: int, task: str) -> tuple:
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int | np.integer) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer, not {n_outputs!r}")
    arrays = []
    for split, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or x.dtype.kind not in "biuf":
            raise ValueError(f"x_{split} must be a numeric array (n, ...), not {x.dtype} {x.shape}")
        if len(x) == 0:
            raise ValueError(f"x_{split} is empty")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"x_{split} contains NaN or inf")
        if len(y) != len(x):
            raise ValueError(f"y_{split} has {len(y)} rows but x_{split} {len(x)}")
        if task == "classification":
            if y.ndim != 1 or y.dtype.kind not in "iu":
                raise ValueError(f"y_{split} must be 1-D class indices, not {y.dtype} {y.shape}")
            if y.min() < 0 or y.max() >= n_outputs:
                raise ValueError(
                    f"y_{split} holds classes {y.min()}..{y.max()}, outside 0..{n_outputs - 1}"
                )
        else:
            if y.ndim == 1 and n_outputs == 1:
                y = y[:, None]
            if y.shape[1:] != (n_outputs,) or y.dtype.kind not in "biuf":
                raise ValueError(
                    f"y_{split} must be real targets of shape (n, {n_outputs}), "
                    f"not {y.dtype} {y.shape}"
                )
            if not np.all(np.isfinite(y)):
                raise ValueError(f"y_{split} contains NaN or inf")
        arrays += [x, y]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise ValueError(
            f"x_train samples have shape {arrays[0].shape[1:]} but x_val {arrays[2].shape[1:]}"
        )
    return tuple(arrays)


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


class _Loss(nn.Module):
    """Network + HGQ loss as one module, so ``functional_call`` swaps every tensor it reads."""

    def __init__(self, model: nn.Module, loss_function, gamma: float) -> None:
        super().__init__()
        self.model = model
        self.loss_function = loss_function
        self.gamma = gamma

    def forward(self, x, y, beta):
        task_loss = self.loss_function(self.model(x), y)
        resource = beta * ebops(self.model) + self.gamma * frac_bits_sum(self.model)
        return task_loss + resource, task_loss.detach()


def _own_code(function):
    """``function`` with a code object of its own: dynamo caches graphs per code object, and
    without guards a second model would otherwise reuse the first one's graph."""
    code = function.__code__.replace()
    return types.FunctionType(
        code, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )


def compiled_step(model: nn.Module, optimizer: torch.optim.Adam, loss_function, gamma: float):
    """One training step (forward, backward, Adam, clamp of the fractional bits) compiled whole.

    ``torch.func.grad`` gives the gradients inside the graph, and the update is
    ``torch.optim.Adam``'s (on its own ``step``/``exp_avg``/``exp_avg_sq`` state, so
    checkpoints and resuming are unchanged), written in place; inductor fuses it all into a
    few C++ kernels plus the matmuls/convolutions, with no ``.item()`` sync. Guards are
    skipped (they cost ~1 ms of a 2.7 ms MLP step): call the result only in training mode with
    batches of the shape of its first call, and with constant learning rates.
    Returns ``run(x, y, beta) -> task loss`` (a 0-d tensor; ``beta`` a 0-d tensor too).
    """
    wrapped = _Loss(model, loss_function, gamma)
    names = [name for name, _ in wrapped.named_parameters()]
    params = [p for _, p in wrapped.named_parameters()]
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    hyper = [(groups[id(p)]["lr"], *groups[id(p)]["betas"], groups[id(p)]["eps"]) for p in params]
    clamped = [name.endswith("frac_bits") for name in names]
    buffers = dict(wrapped.named_buffers())
    for p in params:  # the state torch.optim.Adam creates at its first step
        if not optimizer.state[p]:
            optimizer.state[p].update(
                step=torch.tensor(0.0),
                exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
            )

    def loss_of(values, buffers, x, y, beta):
        tensors = {**dict(zip(names, values, strict=True)), **buffers}
        return torch.func.functional_call(wrapped, tensors, (x, y, beta))

    grad = torch.func.grad(loss_of, has_aux=True)

    def step(params, exp_avgs, exp_avg_sqs, steps, buffers, x, y, beta):
        grads, task_loss = grad(params, buffers, x, y, beta)
        with torch.no_grad():
            for p, g, m, v, t, (lr, beta1, beta2, eps), clamp in zip(
                params, grads, exp_avgs, exp_avg_sqs, steps, hyper, clamped, strict=True
            ):
                t.add_(1)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                new = p - lr / (1 - beta1**t) * m / ((v / (1 - beta2**t)).sqrt() + eps)
                p.copy_(new.clamp(*FRAC_BITS_LIMITS) if clamp else new)
        return task_loss

    options = {
        "guard_filter_fn": torch.compiler.skip_all_guards_unsafe,
        # per-element quantizers index (C, H, W): channels-last convolutions only add
        # transposes around them
        "layout_optimization": False,
        # one kernel for the many small independent ones (the per-tensor Adam updates)
        "combo_kernels": True,
    }
    compiled = torch.compile(_own_code(step), options=options)

    def run(x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        state = [optimizer.state[p] for p in params]  # resuming replaces these tensors
        return compiled(
            params,
            [s["exp_avg"] for s in state],
            [s["exp_avg_sq"] for s in state],
            [s["step"] for s in state],
            buffers,
            x,
            y,
            beta,
        )

    return run


def _bad_parameter(model: nn.Module) -> str | None:
    for name, parameter in model.named_parameters():
        if not torch.all(torch.isfinite(parameter)):
            return name
    return None


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_outputs: int,
    config: TrainConfig | None = None,
    *,
    task: str | None = None,
    quiet: bool = False,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch=None,
) -> TrainResult:
    """Train an HGQ network; returns the model, one history row per epoch and the Pareto front.

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        Samples ``(n, *input_shape)``; targets are class indices ``(n,)`` for classification,
        reals ``(n, n_outputs)`` for regression. The validation split ranks the epochs.
    n_outputs
        Classes, or regression targets per sample.
    task
        The data set's task; ``config.task`` must agree when both are given.
    checkpoint_dir
        Folder of ``checkpoint.pt`` (the last completed epoch: model, optimizer, epoch, RNG
        states, history, keeper, configuration) and ``front/epoch_NNNN.pt`` (each kept
        point's model). ``None`` keeps everything in memory.
    resume
        Continue the run in ``checkpoint_dir`` after its last completed epoch. The
        configuration and the data must be the same (``ValueError`` names what differs).
    on_epoch
        Called as ``on_epoch(row)`` with each completed epoch's history row, after its
        checkpoint is written (a sweep reports to its scheduler there).

    Each epoch resets the observed activation ranges, so the integer bits follow the weights.
    Progress is a bar over epochs on stderr (``quiet`` hides it).

    Raises
    ------
    TrainingDiverged
        (a ``FloatingPointError`` and ``ValueError``) when the loss, the validation metric or
        a parameter becomes NaN or infinite; the last good checkpoint stays.
    ValueError
        For bad arrays, a checkpoint folder that holds a run already (without ``resume``) or
        none (with it), or a checkpoint of another configuration or data set.
    """
    config = config or TrainConfig()
    task = resolve_task(config.task, task)
    x_train, y_train, x_val, y_val = _check_arrays(x_train, y_train, x_val, y_val, n_outputs, task)
    n_outputs = int(n_outputs)
    if resume and checkpoint_dir is None:
        raise ValueError("resume needs the checkpoint_dir of the run to continue")
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    spinning = threads.spin_warning(config.threads)
    if spinning:
        warnings.warn(spinning, RuntimeWarning, stacklevel=2)
    try:
        return _train(
            x_train,
            y_train,
            x_val,
            y_val,
            n_outputs,
            config,
            task,
            quiet,
            checkpoint_dir,
            resume,
            on_epoch,
        ).finish(start)
    finally:
        torch.set_num_threads(previous_threads)


class _Run:
    """The state of one run between epochs (what a checkpoint holds)."""

    def __init__(self, config: TrainConfig, task: str, input_shape, n_outputs: int, device):
        torch.manual_seed(config.seed)
        self.config = config
        self.task = task
        self.input_shape = tuple(int(d) for d in input_shape)
        self.n_outputs = n_outputs
        self.device = device
        self.model = build_model(config, self.input_shape, n_outputs).to(device)
        self.optimizer = make_optimizer(self.model, config)
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)
        self.keeper = ParetoKeeper(higher_is_better=METRICS[task][1])
        self.history: list[dict] = []
        self.store = FrontStore()
        self.next_epoch = 0

    def state(self, epoch: int, identity: dict) -> dict:
        return {
            "format": checkpoint.FORMAT,
            "format_version": checkpoint.FORMAT_VERSION,
            **identity,
            "epoch": epoch,
            "model": _model_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "generator": self.generator.get_state(),
            "history": self.history,
            "keeper": self.keeper.state_dict(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])
        self.keeper = ParetoKeeper.from_state_dict(state["keeper"])
        self.next_epoch = int(state["epoch"]) + 1

    def finish(self, start: float) -> TrainResult:
        self.model.cpu()
        return TrainResult(
            model=self.model,
            history=self.history,
            seconds=time.perf_counter() - start,
            task=self.task,
            front=self.keeper.points,
            config=self.config,
            input_shape=self.input_shape,
            n_outputs=self.n_outputs,
            store=self.store,
        )


def _identity(config, task, n_outputs, x_train, y_train, x_val, y_val) -> dict:
    """What a resumed run must share with the checkpoint."""
    return {
        "config": checkpoint.config_record(config),
        "data": {
            "task": task,
            "n_outputs": n_outputs,
            "input_shape": list(x_train.shape[1:]),
            "train": checkpoint.fingerprint(x_train, y_train),
            "validation": checkpoint.fingerprint(x_val, y_val),
        },
    }


def _open(run: _Run, folder: Path, identity: dict, resume: bool) -> Path:
    """Prepare the checkpoint folder: check and restore a checkpoint, or refuse to overwrite."""
    path = folder / checkpoint.CHECKPOINT_FILE
    if resume:
        if not path.is_file():
            raise ValueError(f"nothing to resume: {path} does not exist")
        state = checkpoint.load(path)
        changed = checkpoint.differences({k: state.get(k) for k in identity}, identity)
        if changed:
            raise ValueError(
                f"cannot resume {folder}: it was started with other settings or data "
                f"({'; '.join(changed)}); repeat the options it was started with"
            )
        run.restore(state)
    elif path.exists():
        raise ValueError(
            f"{folder} holds a training run already ({path.name}): continue it with resume "
            "(--resume) or remove the folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.remove_temporaries(folder)
    run.store = FrontStore(folder / FRONT_DIR)
    run.store.prune({point.epoch for point in run.keeper.points})
    return path


def _train(
    x_train, y_train, x_val, y_val, n_outputs, config, task, quiet, checkpoint_dir, resume, on_epoch
):
    device = resolve_device(config.device)
    run = _Run(config, task, x_train.shape[1:], n_outputs, device)
    identity = _identity(config, task, n_outputs, x_train, y_train, x_val, y_val)
    path = None
    if checkpoint_dir is not None:
        path = _open(run, Path(checkpoint_dir), identity, resume)
    model, optimizer = run.model, run.optimizer
    target_dtype = torch.int64 if task == "classification" else torch.float32
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=target_dtype, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    loss_function = F.cross_entropy if task == "classification" else F.mse_loss
    metric_name = METRICS[task][0]
    epochs = range(run.next_epoch, config.epochs)
    bar = tqdm(
        epochs,
        desc="train",
        disable=quiet,
        file=sys.stderr,
        unit="epoch",
        initial=epochs.start,
        total=config.epochs,
    )

    def diverged(what: str) -> TrainingDiverged:
        if not run.history:
            kept = "no epoch completed"
        elif path is not None:
            kept = f"the last good checkpoint (epoch {run.history[-1]['epoch']}) is kept in {path}"
        else:
            kept = f"epoch {run.history[-1]['epoch']} was the last good one (no checkpoint folder)"
        return TrainingDiverged(
            f"training diverged: {what}; {kept} (try lower learning rates or a smaller beta)"
        )

    step = compiled_step(model, optimizer, loss_function, config.gamma) if config.compile else None
    eager = eager_step(model, optimizer, loss_function, config.gamma)
    with bar:
        for epoch in bar:
            beta = config.beta(epoch, config.epochs)
            beta_tensor = torch.tensor(beta, device=device)
            model.train()
            reset_ranges(model)
            order = torch.randperm(len(xt), generator=run.generator).to(device)
            total = torch.zeros((), device=device)  # summed on the device: no sync per step
            for first in range(0, len(xt), config.batch_size):
                batch = order[first : first + config.batch_size]
                if step is not None and len(batch) == config.batch_size:
                    total += step(xt[batch], yt[batch], beta_tensor) * len(batch)
                    continue
                loss, task_loss = eager(xt[batch], yt[batch], beta)
                if device.type == "cpu" and not torch.isfinite(loss):
                    raise diverged(f"the loss became {loss.item()} in epoch {epoch}")
                total += task_loss * len(batch)
            total = float(total)
            if not math.isfinite(total):
                raise diverged(f"the loss became {total} in epoch {epoch}")
            bad = _bad_parameter(model)
            if bad is not None:
                raise diverged(f"parameter {bad} became NaN or inf in epoch {epoch}")
            metrics = task_metrics(task, _outputs(model, xv), y_val)
            with torch.no_grad():
                surrogate = float(ebops(model))
            if not all(math.isfinite(v) for v in (*metrics.values(), surrogate)):
                raise diverged(f"the validation {metric_name} became {metrics[metric_name]}")
            point = ParetoPoint(epoch, beta, metrics[metric_name], surrogate)
            kept, removed = run.keeper.offer(point)
            if kept:
                run.store.put(epoch, _model_state(model))
            row = {"epoch": epoch, "beta": beta, "loss": total / len(xt), "ebops": surrogate}
            row.update({f"val_{key}": value for key, value in metrics.items()})
            row["kept"] = kept
            run.history.append(row)
            if path is not None:
                checkpoint.save(run.state(epoch, identity), path)
            for gone in removed:
                run.store.drop(gone.epoch)
            if on_epoch is not None:
                on_epoch(row)
            bar.set_postfix(
                loss=f"{row['loss']:.3g}",
                **{metric_name[:3]: f"{metrics[metric_name]:.3g}"},
                ebops=f"{surrogate:.0f}",
                front=len(run.keeper.points),
            )
    return run

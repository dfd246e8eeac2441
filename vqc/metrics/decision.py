"""From class probabilities to a decided class: argmax, or the Bayes rule of least expected cost.

Argmax minimises the number of mistakes; the Bayes rule ``argmin_j sum_i p_i C[i, j]`` minimises
the expected cost, which is what PWA measures. Under the challenge's costs a 40% chance of a
defect outweighs a 60% chance of GOOD (calling a defect GOOD costs 10,000, the reverse 100). The
rule is only as good as the probabilities, hence ``TemperatureScaler``, fitted on validation
logits, to calibrate an over-confident network first.

Probabilities cover the trained classes only (``codes``); the open-set class is decided apart,
by a drift detector (``drift`` / ``open_set_code`` in ``decide``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqc.errors import ConfigError, DataError
from vqc.metrics.cost import CostSpec, load_cost_matrix, sub_matrix

DecisionRule = Literal["argmax", "bayes"]
DECISION_RULES: tuple[str, ...] = ("argmax", "bayes")


def _check_probs(probs: Tensor) -> None:
    if not isinstance(probs, Tensor) or not probs.is_floating_point() or probs.ndim != 2:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise DataError(f"probabilities must be a float (N, K) tensor, got {shape}")


def _code_map(codes: Sequence[int] | None, width: int, device: torch.device) -> Tensor | None:
    if codes is None:
        return None
    if len(codes) != width:
        raise DataError(f"{width} probability columns but {len(codes)} codes {list(codes)}")
    return torch.as_tensor([int(c) for c in codes], dtype=torch.long, device=device)


def decision_cost(cost: CostSpec | Tensor, width: int, codes: Sequence[int] | None) -> Tensor:
    """The ``width x width`` costs among the classes of the probability columns.

    A matrix that is already ``width x width`` is used as it is; a larger one (the challenge's
    7x7 with Drift) is cut to rows and columns ``codes`` (default ``0..width-1``).
    """
    matrix = load_cost_matrix(cost)
    if matrix.shape[0] == width:
        return matrix
    if matrix.shape[0] < width:
        raise ConfigError(f"cost matrix is {matrix.shape[0]}x{matrix.shape[0]}, smaller than the "
                          f"{width} probability columns")
    return sub_matrix(matrix, list(range(width)) if codes is None else codes)


def expected_costs(probs: Tensor, cost: Tensor) -> Tensor:
    """``(N, K)``: entry ``[n, j] = sum_i probs[n, i] * C[i, j]``, the risk of answering ``j``."""
    return probs.to(torch.float64) @ cost.to(device=probs.device, dtype=torch.float64)


def argmax_decision(probs: Tensor, codes: Sequence[int] | None = None) -> Tensor:
    """The most probable class; column ``k`` stands for ``codes[k]`` (default ``k``)."""
    _check_probs(probs)
    index = probs.argmax(dim=1)
    mapping = _code_map(codes, probs.shape[1], probs.device)
    return index if mapping is None else mapping[index]


def bayes_decision(
    probs: Tensor, cost: CostSpec | Tensor = None, codes: Sequence[int] | None = None
) -> Tensor:
    """The class of least expected cost, ``argmin_j sum_i p_i C[i, j]`` (first one on ties).

    ``probs`` should be calibrated probabilities (rows summing to 1) over the classes ``codes``;
    ``cost`` is their ``K x K`` matrix or a larger one cut by ``decision_cost``.
    """
    _check_probs(probs)
    matrix = decision_cost(cost, probs.shape[1], codes)
    index = expected_costs(probs, matrix).argmin(dim=1)
    mapping = _code_map(codes, probs.shape[1], probs.device)
    return index if mapping is None else mapping[index]


def decide(
    probs: Tensor,
    rule: DecisionRule | str = "argmax",
    cost: CostSpec | Tensor = None,
    codes: Sequence[int] | None = None,
    drift: Tensor | None = None,
    open_set_code: int | None = None,
) -> Tensor:
    """Decided class codes for ``probs`` by ``rule``; where ``drift`` is true, ``open_set_code``."""
    if rule == "argmax":
        decided = argmax_decision(probs, codes)
    elif rule == "bayes":
        decided = bayes_decision(probs, cost, codes)
    else:
        raise ConfigError(f"decision rule {rule!r}: expected one of {list(DECISION_RULES)}")
    if drift is not None:
        if open_set_code is None:
            raise ConfigError("decide: drift flags given but no open_set_code")
        drift = drift.to(device=decided.device, dtype=torch.bool).reshape(-1)
        if drift.shape[0] != decided.shape[0]:
            raise DataError(f"drift has {drift.shape[0]} flags for {decided.shape[0]} images")
        decided = torch.where(drift, torch.full_like(decided, int(open_set_code)), decided)
    return decided


class TemperatureScaler(nn.Module):
    """Divides logits by one temperature ``T`` fitted on validation data (Guo et al., 2017).

    ``T`` is fitted by LBFGS on ``log T`` (so it stays positive) to minimise the negative
    log-likelihood; it does not change the argmax, only how confident the probabilities are,
    which is what the Bayes rule needs. It is stored as a buffer, not a parameter, so a training
    optimiser never touches it, and it travels in the module's ``state_dict``.
    """

    log_temperature: Tensor

    #: Fitted temperatures are kept within [1/100, 100].
    MAX_LOG_TEMPERATURE = math.log(100.0)

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0 or not math.isfinite(temperature):
            raise ConfigError(f"temperature must be a positive number, got {temperature}")
        self.register_buffer("log_temperature", torch.tensor(math.log(temperature)))

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.exp())

    #: After :meth:`fit`: ``"below"`` when a smaller temperature would fit validation as well
    #: (every image answered right by a margin: nothing bounds the confidence), ``"above"``
    #: when a larger one would (the logits tell nothing), else ``None``.
    unbounded: str | None = None

    @property
    def at_bound(self) -> bool:
        """Whether the last fit found no temperature the validation logits bound."""
        return self.unbounded is not None

    def bound_warning(self, images: int) -> str | None:
        """What an unbounded fit means, or ``None`` when validation bounds the temperature."""
        if self.unbounded is None:
            return None
        why = ("every validation image was answered right by a margin, so nothing bounds the "
               "confidence: probabilities come out near 0 or 1 for any image, drift included"
               if self.unbounded == "below" else
               "the validation answers are no better than chance")
        return (f"temperature at its bound ({self.temperature:.3g}, fitted on {images} "
                f"validation images): {why}; the least-cost decision reads these "
                "probabilities: add validation images, or set module.decision=argmax")

    def forward(self, logits: Tensor) -> Tensor:
        """Scaled logits ``logits / T``."""
        return logits / self.log_temperature.exp().to(logits.dtype)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Calibrated probabilities ``softmax(logits / T)``."""
        return self(logits).softmax(dim=-1)

    @staticmethod
    def nll(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> float:
        """Mean negative log-likelihood of ``targets`` under ``softmax(logits / temperature)``."""
        return float(F.cross_entropy(logits.double() / temperature, targets.long()))

    def fit(self, logits: Tensor, targets: Tensor, max_iter: int = 100) -> TemperatureScaler:
        """Fit ``T`` to validation ``logits`` ``(N, K)`` and ``targets`` (column indices 0..K-1).

        Images of the open-set class have no column: leave them out. Works inside
        ``torch.no_grad`` / ``inference_mode`` (validation hooks).
        """
        if not isinstance(logits, Tensor) or logits.ndim != 2 or not logits.is_floating_point():
            raise DataError("temperature fit: logits must be a float (N, K) tensor")
        if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
            raise DataError(f"temperature fit: {targets.shape[0] if targets.ndim else 0} targets "
                            f"for {logits.shape[0]} logits rows")
        if logits.shape[0] == 0:
            raise DataError("temperature fit: no validation images")
        if targets.min() < 0 or targets.max() >= logits.shape[1]:
            raise DataError(f"temperature fit: targets must be column indices 0.."
                            f"{logits.shape[1] - 1}, got {sorted(set(targets.tolist()))[:10]}")
        if not torch.isfinite(logits).all():
            raise DataError("temperature fit: logits contain nan or inf")
        with torch.inference_mode(False), torch.enable_grad():
            x = logits.detach().clone().to(torch.float64)
            y = targets.detach().clone().long().to(x.device)
            log_t = torch.zeros((), dtype=torch.float64, device=x.device, requires_grad=True)
            optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter,
                                          line_search_fn="strong_wolfe")

            def closure() -> Tensor:
                optimiser.zero_grad()
                loss = F.cross_entropy(x / log_t.exp(), y)
                loss.backward()
                return loss

            optimiser.step(closure)
            fitted = float(log_t.detach().clamp(-self.MAX_LOG_TEMPERATURE,
                                                 self.MAX_LOG_TEMPERATURE))
        if not math.isfinite(fitted):
            fitted = 0.0
        with torch.no_grad():
            self.log_temperature.fill_(fitted)
        t = self.temperature
        here = self.nll(logits, targets, t)
        # NLL is convex in 1/T: at a true minimum, halving and doubling T both fit worse
        lower = self.nll(logits, targets, t / 2) <= here
        higher = self.nll(logits, targets, t * 2) <= here  # both: flat, the logits tell nothing
        self.unbounded = "above" if higher else "below" if lower else None
        return self

"""SGD without ``torch.optim``: the same update, state and state dict as ``torch.optim.SGD``.

The first step of any ``torch.optim`` optimizer imports ``torch._dynamo`` (about a second of
CPU time), which a run of a few seconds pays at every start. :class:`SGD` runs torch's own
single-tensor update (L2 weight decay, momentum without dampening, Nesterov) with the same
element-wise ops, so its steps are bit for bit torch's, and its ``state_dict`` is the one
``torch.optim.SGD`` writes and reads: checkpoints move freely between the two.
"""

from __future__ import annotations

import torch

# torch.optim.SGD's group settings, in its order, with the values this update implements
_FIXED = {"dampening": 0, "maximize": False, "foreach": None, "differentiable": False,
          "fused": None}


class SGD:
    """``torch.optim.SGD(params, lr, momentum, nesterov=..., weight_decay=...)`` (dampening 0,
    not maximizing) for ``params``, a list of tensors or of parameter-group dicts."""

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum")
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        defaults = {"lr": lr, "momentum": momentum, "dampening": 0,
                    "weight_decay": weight_decay, "nesterov": nesterov, **_FIXED}
        self.param_groups = [{**{k: v for k, v in g.items() if k != "params"}, **{
            k: g.get(k, v) for k, v in defaults.items()}, "params": list(g["params"])}
            for g in groups]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (torch's single-tensor SGD)."""
        for group in self.param_groups:
            self._step_group(group)

    def _step_group(self, group: dict) -> None:
        decay, momentum, lr = group["weight_decay"], group["momentum"], group["lr"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad if decay == 0 else p.grad.add(p, alpha=decay)
            if momentum != 0:
                grad = self._momentum_step(p, grad, momentum, group["nesterov"])
            p.add_(grad, alpha=-lr)

    def _momentum_step(self, p: torch.Tensor, grad: torch.Tensor, momentum: float,
                       nesterov: bool) -> torch.Tensor:
        """``grad`` through ``p``'s momentum buffer (started as a copy of the first
        ``grad``): the step's direction, Nesterov's or plain."""
        state = self.state.setdefault(p, {})
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.detach().clone()
        else:
            buf.mul_(momentum).add_(grad, alpha=1)
        return grad.add(buf, alpha=momentum) if nesterov else buf

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """torch.optim.SGD's state dict: parameters numbered through the groups in order."""
        index = {p: i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + count))})
            start += count
        state = {index[p]: dict(s) for p, s in self.state.items() if p in index}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict of :meth:`state_dict` or of ``torch.optim.SGD``."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"])
                for s, g in zip(saved, self.param_groups, strict=True)):
            raise ValueError("the saved optimizer state has other parameter groups than this "
                             "optimizer")
        params = dict(zip([i for s in saved for i in s["params"]], self._params(), strict=True))
        self.state = {}
        for i, entry in state_dict["state"].items():
            p = params[i]
            self.state[p] = {k: v.to(dtype=p.dtype, device=p.device).clone()
                             if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                             for k, v in entry.items()}
        for group, s in zip(self.param_groups, saved, strict=True):
            group.update({k: v for k, v in s.items() if k != "params"})

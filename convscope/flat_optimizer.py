"""A torch optimizer that steps each parameter group as one flat tensor.

A torch optimizer on the CPU runs its handful of element-wise ops once per parameter: on
ConvNetJS's demo nets at their batch sizes (4 and 20) that loop was a sixth of a training step.
:class:`FlatOptimizer` moves each group's parameters into one buffer (the parameters become
views of it, their gradients views of a second one that backward accumulates into), so a step
is that handful of ops once per group. Its ``state_dict`` speaks per parameter, exactly as the
torch optimizer's would, so checkpoints do not depend on it.

The difference from the torch optimizer: a parameter that got no gradient in a step counts as
a zero gradient (as with ``zero_grad(set_to_none=False)``) instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def can_flatten(groups: list[dict]) -> bool:
    """Whether every group's parameters share one dtype and device (what a buffer needs)."""
    return all(len({(p.dtype, p.device) for p in group["params"]}) <= 1 for group in groups)


def _layout(param: torch.Tensor) -> tuple[int, ...]:
    """The strides the parameter keeps inside the buffer: its own when it is dense
    (contiguous or channels_last), else contiguous ones."""
    if param.is_contiguous() or (param.dim() == 4 and
                                 param.is_contiguous(memory_format=torch.channels_last)):
        return param.stride()
    return torch.empty(param.shape, device="meta").stride()


class FlatOptimizer:
    """``make(groups)`` (a torch optimizer for parameter groups) over flat copies of ``groups``.

    The parameters are re-pointed at the buffers on construction (move the model before, not
    after); ``zero_grad`` zeroes the gradient buffers; ``param_groups`` are the torch
    optimizer's (one flat tensor each; set ``lr`` there); ``step``, ``state_dict`` and
    ``load_state_dict`` behave as the torch optimizer's on the original parameters."""

    def __init__(self, groups: list[dict],
                 make: Callable[[list[dict]], torch.optim.Optimizer]) -> None:
        self.params: list[list[torch.nn.Parameter]] = []
        self.grads: list[torch.Tensor] = []
        flat_groups = []
        for group in groups:
            params = list(group["params"])
            flat, grad = self._flatten(params)
            self.params.append(params)
            self.grads.append(grad)
            flat_groups.append({**group, "params": [flat]})
        self.inner = make(flat_groups)

    def _flatten(self, params: list[torch.nn.Parameter]) -> tuple[torch.nn.Parameter,
                                                                    torch.Tensor]:
        like = params[0] if params else torch.empty(0)
        total = sum(p.numel() for p in params)
        flat = torch.empty(total, dtype=like.dtype, device=like.device)
        grad = torch.zeros_like(flat)
        offset = 0
        with torch.no_grad():
            for p in params:
                stride = _layout(p)
                view = flat.as_strided(p.shape, stride, offset)
                view.copy_(p)
                p.data = view
                p.grad = grad.as_strided(p.shape, stride, offset)
                offset += p.numel()
        buffer = torch.nn.Parameter(flat)
        buffer.grad = grad
        return buffer, grad

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient buffers (the gradients stay views of them, whatever
        ``set_to_none`` says)."""
        for grad in self.grads:
            grad.zero_()

    def step(self) -> None:
        self.inner.step()

    def _views(self, buffer: torch.Tensor, group: int) -> list[torch.Tensor]:
        """``buffer`` (laid out like group ``group``'s flat parameter) cut into the shapes and
        strides of its parameters."""
        views, offset = [], 0
        for p in self.params[group]:
            views.append(buffer.as_strided(p.shape, p.stride(), buffer.storage_offset() + offset))
            offset += p.numel()
        return views

    def state_dict(self) -> dict:
        """The torch optimizer's state dict, per parameter (indices numbered through the
        groups in order)."""
        inner = self.inner.state_dict()
        state, groups, index = {}, [], 0
        for g, saved in enumerate(inner["param_groups"]):
            count = len(self.params[g])
            groups.append({**saved, "params": list(range(index, index + count))})
            flat_state = inner["state"].get(saved["params"][0], {})
            per_param = [{} for _ in range(count)]
            for key, value in flat_state.items():
                parts = self._views(value, g) if self._is_flat(value, g) else [value] * count
                for entry, part in zip(per_param, parts, strict=True):
                    entry[key] = part
            state.update({index + i: entry for i, entry in enumerate(per_param) if entry})
            index += count
        return {"state": state, "param_groups": groups}

    def _is_flat(self, value, group: int) -> bool:
        total = sum(p.numel() for p in self.params[group])
        return isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() == total \
            and total > 0

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a per-parameter state dict (from :meth:`state_dict` or the torch optimizer)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.params) or any(
                len(saved["params"]) != len(params)
                for saved, params in zip(saved_groups, self.params, strict=True)):
            raise ValueError("the saved optimizer state has other parameter groups than this "
                             "optimizer")
        state, groups = {}, []
        for g, saved in enumerate(saved_groups):
            groups.append({**saved, "params": [g]})
            entries = [state_dict["state"].get(i, {}) for i in saved["params"]]
            flat_state = {}
            for key in dict.fromkeys(k for entry in entries for k in entry):
                pairs = [(entry[key], p) for entry, p in zip(entries, self.params[g], strict=True)
                         if key in entry]
                per_element = any(p.dim() for _, p in pairs) and all(
                    isinstance(v, torch.Tensor) and v.shape == p.shape for v, p in pairs)
                shared = pairs[0][0]  # such as a step count, the same for every parameter
                flat_state[key] = self._join([entry.get(key) for entry in entries], g) \
                    if per_element else shared.clone() if isinstance(shared, torch.Tensor) \
                    else shared
            if flat_state:
                state[g] = flat_state
        self.inner.load_state_dict({"state": state, "param_groups": groups})

    def _join(self, values: list[torch.Tensor | None], group: int) -> torch.Tensor:
        """Per-parameter tensors as one buffer laid out like the group's flat parameter
        (zeros for a parameter that has none)."""
        flat = self.inner.param_groups[group]["params"][0]
        buffer = torch.zeros_like(flat, memory_format=torch.contiguous_format).detach()
        for view, value in zip(self._views(buffer, group), values, strict=True):
            if value is not None:
                view.copy_(value)
        return buffer

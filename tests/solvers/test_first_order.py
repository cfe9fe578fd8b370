"""The first-order updates of ocdl.solvers.first_order against torch.optim, and the gradient layouts
that torch's fused kernels require."""
from __future__ import annotations

import pytest
import torch
import torch.optim.adam as torch_adam

from ocdl.solvers.first_order import adam_init, adam_step, like_params


def test_like_params_copies_only_gradients_laid_out_otherwise():
    p = torch.randn(8, 4, 3, 3)
    same = torch.randn(8, 4, 3, 3)
    other = torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    a, b = like_params([same, other], [p, p])
    assert a is same                                   # nothing to do: no copy
    assert b.stride() == p.stride() and torch.equal(b, other)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_adam_step_with_channels_last_gradients_matches_torch_adam(device, monkeypatch):
    # the layout torch.autograd.grad may return for a conv weight on CUDA (cuDNN)
    torch.manual_seed(0)
    p0 = torch.randn(8, 4, 3, 3, device=device)
    grads = [torch.randn(8, 4, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
             for _ in range(3)]
    seen = []
    real_adam = torch_adam.adam

    def spy(params, gs, *args, **kwargs):
        seen.extend((g.stride(), p.stride()) for g, p in zip(gs, params))
        return real_adam(params, gs, *args, **kwargs)
    monkeypatch.setattr(torch_adam, "adam", spy)

    p = p0.clone()
    state = adam_init({"w": p})
    for g in grads:
        adam_step({"w": p}, {"w": g}, state, lr=1e-2)
    assert seen and all(gs == ps for gs, ps in seen)   # the fused kernel saw matching layouts

    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=1e-2, foreach=False, fused=False)
    for g in grads:
        ref.grad = g.contiguous()
        opt.step()
    torch.testing.assert_close(p, ref.detach(), rtol=1e-6, atol=1e-7)

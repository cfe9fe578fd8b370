"""CUDA paths: the same System on the GPU gives the CPU's states, costates and M (run with -m gpu)."""
import pytest
import torch

import ocdl
from ocdl.models import model_path

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


def test_costates_on_cuda_match_cpu(cuda):
    spec = ocdl.load_spec(model_path("mnist-fc-ternary"))
    cpu = spec.compile(dtype=torch.float64, seed=2)
    gpu = spec.compile(device=cuda, dtype=torch.float64, seed=2)
    assert all(torch.equal(cpu.theta[k], gpu.theta[k].cpu()) for k in cpu.theta)
    x = torch.rand(64, 784, dtype=torch.float64)
    y = torch.randint(10, (64,))
    c1 = cpu.costates(cpu.forward(x), y)
    c2 = gpu.costates(gpu.forward(x.to(cuda)), y.to(cuda))
    assert abs(float(c1.J) - float(c2.J)) < 1e-10
    for k in c1.M:
        assert torch.allclose(c1.M[k], c2.M[k].cpu(), atol=1e-10), k
    for a, b in zip(c1.p[1:], c2.p[1:]):
        assert torch.allclose(a, b.cpu(), atol=1e-10)


def test_hamiltonian_on_cuda(cuda):
    m = ocdl.Model("conv", input=(3, 8, 8))
    m.conv2d(4, 3, padding=1, control=ocdl.Binary()); m.batchnorm(); m.relu(); m.flatten()
    m.dense(5)
    system = m.compile(device=cuda, dtype=torch.float64)
    x = torch.randn(6, 3, 8, 8, device=cuda, dtype=torch.float64)
    st = system.forward(x)
    c = system.costates(st, torch.randint(5, (6,), device=cuda))
    th = {k: v.detach().clone().requires_grad_(True) for k, v in system.stage_theta(0).items()}
    H = system.hamiltonian(0, system.stage_inputs(st, 0), c.p[1], th)
    (g,) = torch.autograd.grad(H, [th["conv2d1.weight"]])
    assert torch.allclose(g, c.M["conv2d1.weight"], atol=1e-10)

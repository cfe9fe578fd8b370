"""The paper's MNIST network (Li & Hao 2018) built with the Python DSL.

Builds 784-2048-2048-2048-10 (ternary dense without bias → batchnorm → ReLU; output ternary dense →
batchnorm; squared hinge; λ‖θ‖₁ with λ = 1e-7), checks it equals the shipped model
mnist-fc-ternary, runs one forward and one costate pass on a batch of 100 and prints what came out.

    python examples/mnist_fc_ternary.py
"""
import torch

import ocdl
from ocdl.models import model_path

m = ocdl.Model("mnist-fc-ternary", input=(784,))
for i in range(1, 4):
    m.dense(2048, bias=False, control=ocdl.Ternary(), name=f"fc{i}")
    m.batchnorm(eps=1e-4, name=f"bn{i}")
    m.relu(name=f"relu{i}")
m.dense(10, bias=False, control=ocdl.Ternary(), name="fc4")
m.batchnorm(eps=1e-4, name="bn4")
m.terminal("squared_hinge").l1(1e-7, on=["fc1", "fc2", "fc3", "fc4"])
m.data("mnist", batch_size=100)

spec = m.spec()
yaml_spec = ocdl.load_spec(model_path("mnist-fc-ternary"))  # ocdl/models/mnist-fc-ternary.yaml
print("DSL spec equals the shipped mnist-fc-ternary:", spec == yaml_spec)

system = spec.compile(device="cuda" if torch.cuda.is_available() else "cpu", seed=0)
print(system)
x = torch.rand(100, 784, device=system.device)
y = torch.randint(10, (100,), device=system.device)
states = system.forward(x)
co = system.costates(states, y)
print(f"J = {float(co.J):.4f} (squared hinge {float(co.loss):.4f}), T = {system.T}")
print("‖p_t‖ for t = 1..T:", " ".join(f"{float(p.norm()):.2e}" for p in co.p[1:]))
print("‖M‖ per control:", {k: round(float(v.norm()), 4) for k, v in co.M.items()})
print(f"non-zero fraction of the ternary weights: {system.nonzero_fraction():.3f}")

"""The paper's MNIST ternary network trained in a plain torch loop with ocdl.optim.EMSA.

784-2048-2048-2048-10, each hidden block a ternary Linear without bias → BatchNorm (ε = 1e-4) →
ReLU, the output Linear → BatchNorm; squared hinge loss, λ‖θ‖₁ with λ = 1e-7 (the optimizer's
``l1``, not in the loss); E-MSA with the paper's settings (ρ = 0.25, α = 0.999, 1 − α × 0.95 per
epoch, Adam lr 1e-3 on BatchNorm's γ and β) — the model ``mnist-fc-ternary`` and the solver
``emsa-ternary`` of ``ocdl solve``. The module starts from the θ that ``ocdl solve`` compiles
(seed 0) and takes the same batches (ocdl's feeders: MNIST 55k/5k/10k, batches of 100 in the
run's order), so the two runs can be compared bit for bit; ``--own-init`` starts from torch's
initialisation instead (the optimizer puts the weights into {−1, 0, +1} with TWN's threshold).

    OCDL_DATA=/path/to/datasets python examples/torch_loop_mnist_ternary.py --epochs 1
    OCDL_DATA=/path/to/datasets ocdl solve mnist-fc-ternary --solver emsa-ternary --epochs 1
"""
import argparse
import time
from collections import OrderedDict

import torch
from torch import nn

import ocdl
from ocdl.costs import squared_hinge
from ocdl.models import model_path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--own-init", action="store_true", help="torch's init instead of ocdl solve's θ")
ap.add_argument("--save", help="save the trained model's state_dict here")
args = ap.parse_args()

layers = OrderedDict()
for i, (n_in, n_out) in enumerate([(784, 2048), (2048, 2048), (2048, 2048), (2048, 10)], 1):
    layers[f"fc{i}"] = nn.Linear(n_in, n_out, bias=False)
    layers[f"bn{i}"] = nn.BatchNorm1d(n_out, eps=1e-4)
    if i < 4:
        layers[f"relu{i}"] = nn.ReLU()
model = nn.Sequential(layers)

spec = ocdl.load_spec(model_path("mnist-fc-ternary"))
system = spec.compile(seed=args.seed)        # ocdl solve's initial θ ...
feeders = spec.feeders(system, "cpu")        # ... and its batches
if not args.own_init:
    model.load_state_dict({k: v for k, v in system.theta.items()}, strict=False)

groups = ocdl.optim.groups(model, {"Linear": {"control": ocdl.Ternary(), "l1": 1e-7}})
opt = ocdl.optim.EMSA(groups, lr=1e-3, rho=0.25, alpha_batch_size=100, seed=args.seed)

for epoch in range(1, args.epochs + 1):
    t0 = time.perf_counter()
    model.train()
    for x, y in feeders.train.epoch(epoch):
        opt.zero_grad(set_to_none=True)
        loss = squared_hinge(model(x), y).mean()
        loss.backward()
        opt.step(samples=len(x))
    opt.end_epoch(progress=epoch / args.epochs)
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in feeders.test.epoch(0))
    print(f"epoch {epoch}: last batch loss {float(loss.detach()):.4f}, test acc "
          f"{100 * correct / feeders.test.n:.2f} %, non-zero "
          f"{100 * float(opt.metrics['nonzero']):.2f} %, {time.perf_counter() - t0:.0f} s")

if args.save:
    torch.save(model.state_dict(), args.save)

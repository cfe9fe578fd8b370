"""ocdl.optim under Lightning: configure_optimizers returns the optimizer; Lightning's automatic
optimisation (a closure that runs the step and backward, then optimizer.step(closure)) trains the
same weights as a plain torch loop."""
from __future__ import annotations

import pytest
import torch

import ocdl
from tests.optim.nets import batches, loss_fn, net_of, spec, torch_step

L = pytest.importorskip("lightning")


class Module(L.LightningModule):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def training_step(self, batch, _):
        x, y = batch
        return loss_fn(self.net(x), y)

    def configure_optimizers(self):
        opt = ocdl.optim.EMSA(ocdl.optim.groups(self.net, {"Linear": ocdl.Ternary()}), lr=1e-3)
        return {"optimizer": opt,
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}

    def on_train_epoch_end(self):
        self.optimizers().optimizer.end_epoch()  # 1 − α ← 0.95 (1 − α)


def test_lightning_trains_with_emsa_as_a_plain_loop_does():
    system = spec("ternary").compile(seed=7)
    data = batches(3)
    module = Module(net_of(system))
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)

    net = net_of(system)
    opt = ocdl.optim.EMSA(ocdl.optim.groups(net, {"Linear": ocdl.Ternary()}), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        for x, y in data:
            torch_step(net, opt, x, y)
        sched.step()
        opt.end_epoch()
    trained = trainer.optimizers[0]
    assert trained.ocdl_state["iteration"] == 6 and trained.param_groups[1]["lr"] == 2.5e-4
    for (n, a), b in zip(module.net.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), n
    assert not torch.equal(module.net.fc1.weight, system.theta["fc1.weight"])

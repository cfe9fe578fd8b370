"""Sign descent (signSGD, Bernstein et al. 2018): θ ← Π_Θ(θ + lr·sign(M)), M = −∇J."""
import torch

from ocdl.solvers import Solver, register_solver
from ocdl.solvers.first_order import project_
from ocdl.solvers.schedules import LrSchedule
from ocdl.solvers.settings import Part, positive


class SignStep(Part):                 # a part: its settings, defaults, docs and checks
    DEFAULTS = {"lr": 0.01}
    DOCS = {"lr": "the sign step's size"}   # one line a setting, shown by ocdl solvers

    @classmethod
    def check(cls, s, require):
        positive(s, require, "lr")


@register_solver
class SignDescent(Solver):
    name = "sign-descent"
    doc = "sign descent: θ ← θ + lr·sign(M) on real controls"
    supports = ("real", "box")
    parts = {"step": SignStep, "lr_schedule": LrSchedule}  # Solver.end_epoch runs lr_schedule
    aliases = {"lr": "step.lr", "lr_decay": "lr_schedule.decay", "lr_end": "lr_schedule.end"}

    def init(self, system):
        self.check_system(system)
        return {"iteration": 0}

    def step(self, system, state, x, y):
        c = system.costates(system.forward(x), y, need_p=False)
        names = [ctl.name for ctl in system.controls]
        with torch.no_grad():
            for n in names:
                system.theta[n].add_(torch.sign(c.M[n]), alpha=self.lr(state, "step.lr"))
        project_(system, names)
        state["iteration"] += 1
        return state, {"loss": c.loss, "J": c.J}

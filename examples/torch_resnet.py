"""A small CIFAR-style ResNet written as plain torch, imported into ocdl and trained with E-MSA.

The network (He et al. 2016's CIFAR layout, one basic block per stage): conv3x3(16)-BN-ReLU, then
blocks of 16, 32 and 64 channels (the last two with stride 2 and a 1×1 projection shortcut),
global average pooling and a linear classifier. ``ocdl.from_torch`` traces it with torch.fx;
every ``out + shortcut`` becomes an ``add`` stage. With ``Conv2d=ternary`` the convolutions'
weights become ternary controls (their start: the torch weights through TWN's threshold), the
BatchNorm scales and the classifier stay real.

    python examples/torch_resnet.py                   # import, check, write runs/torch-resnet/
    python examples/torch_resnet.py --train           # … 2 epochs of E-MSA on 200 images,
                                                      # then back as a torch module

The same from the command line:

    ocdl import-torch examples/torch_resnet.py:resnet --input-shape 3,32,32 \\
        --controls Conv2d=ternary --data cifar-10 --out runs/torch-resnet/resnet.yaml
    OCDL_DATA=/path/to/datasets ocdl solve runs/torch-resnet/resnet.yaml \\
        --solver emsa-ternary --epochs 2 --set data.limit=200
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut is the identity, or a
    1×1 convolution with batchnorm when the block changes the shape."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c, w, stride=1 if i == 0 else 2))
            c = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.pool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


def resnet() -> nn.Module:
    """The network, with torch's default initialisation (seed 0)."""
    torch.manual_seed(0)
    return ResNet()


def main() -> None:
    import ocdl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/torch-resnet", help="folder for the spec and runs")
    ap.add_argument("--train", action="store_true", help="then train 2 epochs on 200 images")
    args = ap.parse_args()

    net = resnet()
    # a real import first: the System computes exactly what the torch module computes
    exact = ocdl.from_torch(net.double(), input_shape=(3, 32, 32))
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    net.eval()
    gap = (exact.system(dtype=torch.float64).predict(x) - net(x)).abs().max().item()
    print(f"real import: {len(exact.spec.stages)} stages; max |ocdl − torch| = {gap:.1e}")

    # ternary convolutions for E-MSA, CIFAR-10 data
    imported = ocdl.from_torch(resnet(), input_shape=(3, 32, 32),
                               controls={"Conv2d": ocdl.Ternary()},
                               data={"name": "cifar-10", "batch_size": 100})
    path = imported.save(f"{args.out}/resnet.yaml")
    print(f"wrote {path}:\n{path.read_text()}")
    if args.train:
        result = ocdl.solve(str(path), solver="emsa-ternary", epochs=2, quiet=False,
                            overrides={"data.limit": 200}, out=f"{args.out}/run")
        print(f"test accuracy {result.final_test_acc:.3f}, non-zero "
              f"{result.nonzero_fraction:.3f}; run folder {result.run_dir}")
        # and back to plain torch: the trained net as an nn.Module (ternary convolutions)
        from ocdl.api import evaluate, load_system, load_trained
        module = load_trained(result.run_dir, device="cpu")
        _, feeders = load_system(result.run_dir, device="cpu")
        with torch.no_grad():
            hits = sum(int((module(x).argmax(1) == y).sum()) for x, y in feeders.test.epoch(0))
        print(f"as a torch module: test accuracy {hits / len(feeders.test.x):.4f} (ocdl "
              f"evaluate: {evaluate(result.run_dir, device='cpu').acc:.4f})")


if __name__ == "__main__":
    main()

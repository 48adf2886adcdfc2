#!/usr/bin/env python3
# The reference training step for jobs/bench-speed.sh: the same models as `mpq bench` (ResNet-20
# with shortcut type b at 32x32x3 and 10 classes; ResNet-18 and MobileNetV2 at 224x224x3 and
# 1000 classes) in PyTorch, float32, channels-last, one training step = forward, cross-entropy,
# backward and SGD with momentum on random data, on T intra-op threads. Prints one JSON line:
# the median images/s of the timed steps after two warm-up steps, and the model's multiply-adds
# per image (counted from the conv and linear layers, to check that both sides run the same
# network). Needs python3-torch (Debian); never a dependency of mpq. Debian's torch calls BLAS
# through libblas.so.3, which is BLIS where BLIS is installed, and BLIS 0.9 runs its slow generic
# kernels on AMD CPUs newer than Zen 3: like mpq (src/kernels/gemm.c), this selects BLIS's AVX-512
# skx kernels (BLIS_ARCH_TYPE=0) on such CPUs unless BLIS_ARCH_TYPE is set already.
#   python3 jobs/torch-step.py MODEL BATCH THREADS STEPS
import json
import os
import statistics
import sys
import time


def blis_arch_workaround():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return
    flags = set()
    for line in info.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "AuthenticAMD" in info and {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        os.environ.setdefault("BLIS_ARCH_TYPE", "0")  # BLIS_ARCH_SKX, read at BLIS's first call


blis_arch_workaround()
import torch  # noqa: E402 (after the BLIS setting)
import torch.nn as nn  # noqa: E402


def conv_bn(cin, cout, k, stride, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


class Basic(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv + BN where the channels change), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True),
                                  *conv_bn(cout, cout, 3, 1))
        self.short = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + (self.short(x) if self.short is not None else x))


def resnet(stem, counts, channels, classes):
    layers, cin = list(stem), channels[0]
    for i, (n, c) in enumerate(zip(counts, channels)):
        for j in range(n):
            layers.append(Basic(cin, c, 2 if j == 0 and i > 0 else 1))
            cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


class Inverted(nn.Module):
    """MobileNetV2's block: 1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 project-BN."""

    def __init__(self, cin, cout, t, stride):
        super().__init__()
        mid = cin * t
        layers = [*conv_bn(cin, mid, 1, 1), nn.ReLU6(inplace=True)] if t != 1 else []
        layers += [*conv_bn(mid, mid, 3, stride, groups=mid), nn.ReLU6(inplace=True),
                   *conv_bn(mid, cout, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


def mobilenetv2(classes):
    layers, cin = [*conv_bn(3, 32, 3, 2), nn.ReLU6(inplace=True)], 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for j in range(n):
            layers.append(Inverted(cin, c, t, s if j == 0 else 1))
            cin = c
    layers += [*conv_bn(cin, 1280, 1, 1), nn.ReLU6(inplace=True), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


def build(name):
    if name == "resnet20":
        stem = [*conv_bn(3, 16, 3, 1), nn.ReLU(inplace=True)]
        return resnet(stem, [3, 3, 3], [16, 32, 64], 10), 32, 10
    if name == "resnet18":
        stem = [*conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        return resnet(stem, [2, 2, 2, 2], [64, 128, 256, 512], 1000), 224, 1000
    if name == "mobilenetv2":
        return mobilenetv2(1000), 224, 1000
    sys.exit(f"torch-step.py: unknown model '{name}' (resnet20, resnet18, mobilenetv2)")


def multiply_adds(model, size):
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += out.numel() * k
        else:
            total[0] += mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, size, size).to(memory_format=torch.channels_last))
        model.train()
    for h in hooks:
        h.remove()
    return total[0]


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: python3 jobs/torch-step.py MODEL BATCH THREADS STEPS")
    name, batch, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, size, classes = build(name)
    model = model.to(memory_format=torch.channels_last)
    macs = multiply_adds(model, size)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for k in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if k >= 2:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"model": name, "batch": batch, "threads": threads,
                      "train_images_per_s": round(batch / statistics.median(times), 2),
                      "m_multiply_adds_per_image": round(macs / 1e6, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()

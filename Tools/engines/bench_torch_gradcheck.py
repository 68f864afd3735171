"""Times torch.autograd.gradcheck in full mode (fast_mode=False) on conv2d for `cnnref bench`.

Reads {"x": [...], "x_shape": [...], "weight": ..., "weight_shape": ..., "bias": ..., "padding": p,
"repetitions": n} on stdin (the bench's own tensors, so both check the same function) and prints
{"median_ms": m, "passed": true|false}: the median wall time of one gradcheck call in this process.
"""
import json
import sys
import time

import torch


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(1)
    x = torch.tensor(spec["x"], dtype=torch.float64).reshape(spec["x_shape"]).requires_grad_()
    w = torch.tensor(spec["weight"], dtype=torch.float64).reshape(spec["weight_shape"]).requires_grad_()
    b = torch.tensor(spec["bias"], dtype=torch.float64).requires_grad_()
    pad = spec["padding"]

    def f(x, w, b):
        return torch.nn.functional.conv2d(x, w, b, padding=pad)

    times, passed = [], True
    for _ in range(spec["repetitions"]):
        start = time.perf_counter()
        passed = passed and torch.autograd.gradcheck(f, (x, w, b), fast_mode=False)
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"median_ms": times[len(times) // 2] * 1e3, "passed": bool(passed)}))


if __name__ == "__main__":
    main()

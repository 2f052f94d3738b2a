#!/usr/bin/env python3
"""Train a small forecaster in PyTorch and save it as safetensors for xtensor-rnn (examples/from_pytorch/main.cpp).

    python3 train.py                              # trains, writes model.safetensors and predictions.txt here
    ./from_pytorch --weights model.safetensors    # the C++ side: same predictions, one more epoch, exports
    python3 train.py --check out/continued.safetensors   # PyTorch reads the C++ export back (strict=True)

The task: windows of 20 values of s(t) = sin(0.2 t) + 0.5 sin(0.07 t) predict the next value. The model: an LSTM
with 16 hidden units whose last step goes through a Linear layer. Its state_dict names (lstm.weight_ih_l0, ...,
fc.weight, fc.bias) are the names xrnn reads with the prefixes {"lstm", "fc"}.

No safetensors package is needed: the format (an 8-byte little-endian header length, a JSON header, raw
little-endian data) is written and read below in a few lines. With the package installed,
safetensors.torch.save_file(model.state_dict(), path) writes the same tensors.
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
SEQ, HIDDEN, LENGTH, TRAIN = 20, 16, 500, 380  # windows 0..379 train, the rest test
SHOWN = 5  # predictions printed: the first test windows


def series():
    t = torch.arange(LENGTH, dtype=torch.float64)
    return (torch.sin(0.2 * t) + 0.5 * torch.sin(0.07 * t)).float()


def windows():
    s = series()
    n = LENGTH - SEQ
    x = torch.stack([s[i:i + SEQ] for i in range(n)]).unsqueeze(-1)  # (N, SEQ, 1)
    y = s[SEQ:].unsqueeze(-1)  # (N, 1)
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN)
        self.fc = nn.Linear(HIDDEN, 1)

    def forward(self, x):  # x (N, SEQ, 1)
        out, _ = self.lstm(x.transpose(0, 1))  # time-major, as xrnn
        return self.fc(out[-1])


def save_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        blob = t.detach().float().contiguous().numpy().tobytes()  # little-endian float32 on x86 and ARM
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    dtypes = {"F32": torch.float32, "F64": torch.float64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(body[begin:end])
        out[name] = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"]).clone()
    return out


def write_predictions(path, predictions):
    with open(path, "w") as f:
        for i, p in enumerate(predictions.reshape(-1).tolist()):
            f.write("%d %.9g\n" % (i, p))


def main():
    _, _, x_test, y_test = windows()
    if sys.argv[1:2] == ["--check"]:
        path = sys.argv[2]
        model = Forecaster()
        model.load_state_dict(load_safetensors(path), strict=True)
        with torch.no_grad():
            p = model(x_test[:SHOWN]).reshape(-1)
        theirs = os.path.splitext(path)[0] + "_predictions.txt"
        print("PyTorch, from %s: %s" % (path, " ".join("%.6f" % v for v in p.tolist())))
        if os.path.exists(theirs):
            xrnn = torch.tensor([float(l.split()[1]) for l in open(theirs)])
            diff = (p - xrnn).abs().max().item()
            print("xrnn's predictions (%s): max |difference| %.2e" % (theirs, diff))
            return 0 if diff < 1e-5 else 1
        return 0

    torch.manual_seed(0)
    x, y, _, _ = windows()
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(30):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = ((model(x[idx]) - y[idx]) ** 2).mean()
            loss.backward()
            opt.step()
    with torch.no_grad():
        mse = ((model(x_test) - y_test) ** 2).mean().item()
        p = model(x_test[:SHOWN])
    print("PyTorch: test MSE %.6f; predictions %s" % (mse, " ".join("%.6f" % v for v in p.reshape(-1).tolist())))
    save_safetensors(os.path.join(HERE, "model.safetensors"), model.state_dict())
    write_predictions(os.path.join(HERE, "predictions.txt"), p)
    print("wrote model.safetensors and predictions.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

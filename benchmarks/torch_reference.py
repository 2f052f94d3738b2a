#!/usr/bin/python3
"""PyTorch reference for benchmarks/bench.cpp: the same cases, shapes and line format, with impl=torch.

    case=<name> impl=torch ms=<median> min=<min> max=<max> reps=<n>

Run with Debian's /usr/bin/python3 (python3-torch). 2 threads (torch.set_num_threads(2); compare.sh also
exports OPENBLAS_NUM_THREADS=2 and OMP_NUM_THREADS=2). float32, CPU.
Usage: /usr/bin/python3 benchmarks/torch_reference.py [case ...]   (no argument: every case)
"""
import statistics
import sys
import time

import torch

V, D, H, S, B = 10000, 128, 128, 200, 64


def measure(warmup, reps, fn):
    """Runs fn warmup times untimed, then reps times timed; fn returns its number of units (times are per unit)."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(reps):
        start = time.perf_counter()
        units = fn()
        ms.append((time.perf_counter() - start) * 1e3 / units)
    return statistics.median(ms), min(ms), max(ms), reps


def report(name, result):
    median, lo, hi, reps = result
    print(f"case={name} impl=torch ms={median:.6g} min={lo:.6g} max={hi:.6g} reps={reps}", flush=True)


class Model(torch.nn.Module):
    """Embedding(V, D) -> RNN/LSTM(D, H), last step -> Linear(H, 1): the IMDB model of bench.cpp."""

    def __init__(self, recurrent):
        super().__init__()
        self.embed = torch.nn.Embedding(V, D)
        self.recurrent = recurrent(D, H)  # time-major (S, B, .), as xrnn
        self.head = torch.nn.Linear(H, 1)

    def forward(self, ids):
        y, _ = self.recurrent(self.embed(ids))
        return self.head(y[-1])


def data():
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, V, (S, B), generator=g)
    labels = torch.randint(0, 2, (B, 1), generator=g).float()
    return ids, labels


def train_case(name, recurrent, reps):
    torch.manual_seed(42)
    model = Model(recurrent)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    ids, labels = data()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(ids), labels)
        loss.backward()
        optimizer.step()
        return 1

    report(name, measure(2, reps, step))


# lengths of the first 64 IMDB training reviews, cut at 200 (as bench.cpp's imdb_lengths)
IMDB_LENGTHS = [200, 167, 70, 185, 200, 200, 200, 200, 200, 75, 138, 200, 175, 200, 166, 116, 200, 130, 114, 200, 200,
                133, 135, 200, 50, 200, 200, 200, 187, 43, 92, 200, 200, 133, 121, 154, 200, 65, 200, 155, 181, 200, 123,
                200, 175, 124, 200, 81, 200, 74, 193, 35, 200, 200, 200, 200, 113, 200, 112, 54, 200, 200, 177, 113]


class PackedModel(Model):
    """Model over pack_padded_sequence(enforce_sorted=False): the last step is each review's own (h_n)."""

    def forward(self, ids):
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.embed(ids), self.lengths, enforce_sorted=False)
        _, (h_n, _) = self.recurrent(packed)
        return self.head(h_n[-1])


class BidirectionalModel(torch.nn.Module):
    """Embedding -> LSTM(bidirectional=True), both directions' last states concatenated -> Linear(2H, 1)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, D)
        self.recurrent = torch.nn.LSTM(D, H, bidirectional=True)
        self.head = torch.nn.Linear(2 * H, 1)

    def forward(self, ids):
        _, (h_n, _) = self.recurrent(self.embed(ids))
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


def train_model_case(name, model, ids, reps):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    _, labels = data()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(ids), labels)
        loss.backward()
        optimizer.step()
        return 1

    report(name, measure(2, reps, step))


def masked_train_case(reps):
    torch.manual_seed(42)
    model = PackedModel(torch.nn.LSTM)
    model.lengths = torch.tensor(IMDB_LENGTHS)
    ids, _ = data()
    for b, n in enumerate(IMDB_LENGTHS):
        ids[n:, b] = 0
    train_model_case("lstm_train_step_masked", model, ids, reps)


def bidirectional_train_case(reps):
    torch.manual_seed(42)
    ids, _ = data()
    train_model_case("bilstm_train_step", BidirectionalModel(), ids, reps)


def forward_case(name, recurrent, reps):
    torch.manual_seed(42)
    model = Model(recurrent)
    ids, _ = data()

    def forward():
        with torch.no_grad():
            model(ids)
        return 1

    report(name, measure(2, reps, forward))


def layer_train_case(name, recurrent, reps):
    """The recurrent layer alone (bench.cpp's *_layer_train): forward, backward from the last step's output."""
    torch.manual_seed(42)
    layer = recurrent(D, H)
    x = torch.rand(S, B, D) * 2 - 1
    dy = (torch.rand(B, H) * 2 - 1) * 0.1

    def step():
        layer.zero_grad()
        y, _ = layer(x)
        y[-1].backward(dy)
        return 1

    report(name, measure(2, reps, step))


def layer_forward_case(name, recurrent, reps):
    torch.manual_seed(42)
    layer = recurrent(D, H)
    x = torch.rand(S, B, D) * 2 - 1

    def forward():
        with torch.no_grad():
            layer(x)
        return 1

    report(name, measure(2, reps, forward))


def cell_step_case(name, cell_type, reps):
    torch.manual_seed(3)
    cell = cell_type(D, H)
    xs = [torch.rand(1, D) * 2 - 1 for _ in range(64)]
    steps = 2000
    lstm = cell_type is torch.nn.LSTMCell

    def run():
        with torch.no_grad():
            h = torch.zeros(1, H)
            c = torch.zeros(1, H)
            for t in range(steps):
                if lstm:
                    h, c = cell(xs[t % 64], (h, c))
                else:
                    h = cell(xs[t % 64], h)
        return steps

    report(name, measure(3, reps, run))


def sgemm_floor_case(reps):
    """The matrix products of one LSTM training step, as bench.cpp's sgemm_floor, through torch's BLAS."""
    G = 4 * H
    x = torch.rand(S * B, D)
    h = torch.rand(S + 1, B, H)
    z = torch.rand(S, B, G)
    dh = torch.rand(B, H)
    dx = torch.empty(S * B, D)
    w_x = torch.rand(D, G)
    w_h = torch.rand(H, G)
    dw_x = torch.zeros(D, G)
    dw_h = torch.zeros(H, G)
    z2 = z.view(S * B, G)

    def run():
        torch.mm(x, w_x, out=z2)
        for t in range(S):
            z[t].addmm_(h[t], w_h)
        for t in reversed(range(S)):
            torch.mm(z[t], w_h.t(), out=dh)
        dw_x.addmm_(x.t(), z2)
        dw_h.addmm_(h[:S].reshape(S * B, H).t(), z2)
        torch.mm(z2, w_x.t(), out=dx)
        return 1

    report("sgemm_floor", measure(2, reps, run))


def main():
    torch.set_num_threads(2)
    print(f"torch_reference: torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    only = set(sys.argv[1:])

    def wanted(name):
        return not only or name in only

    if wanted("rnn_train_step"):
        train_case("rnn_train_step", torch.nn.RNN, 7)
    if wanted("lstm_train_step"):
        train_case("lstm_train_step", torch.nn.LSTM, 7)
    if wanted("lstm_train_step_masked"):
        masked_train_case(7)
    if wanted("bilstm_train_step"):
        bidirectional_train_case(7)
    if wanted("lstm_forward"):
        forward_case("lstm_forward", torch.nn.LSTM, 9)
    if wanted("rnn_forward"):
        forward_case("rnn_forward", torch.nn.RNN, 9)
    if wanted("lstm_cell_step_b1"):
        cell_step_case("lstm_cell_step_b1", torch.nn.LSTMCell, 9)
    if wanted("rnn_cell_step_b1"):
        cell_step_case("rnn_cell_step_b1", torch.nn.RNNCell, 9)
    if wanted("gru_train_step"):
        train_case("gru_train_step", torch.nn.GRU, 7)
    if wanted("gru_forward"):
        forward_case("gru_forward", torch.nn.GRU, 9)
    if wanted("gru_cell_step_b1"):
        cell_step_case("gru_cell_step_b1", torch.nn.GRUCell, 9)
    for prefix, recurrent in (("rnn", torch.nn.RNN), ("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        if wanted(prefix + "_layer_train"):
            layer_train_case(prefix + "_layer_train", recurrent, 7)
        if wanted(prefix + "_layer_forward"):
            layer_forward_case(prefix + "_layer_forward", recurrent, 9)
    if wanted("sgemm_floor"):
        sgemm_floor_case(9)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fits the attention kernel model (costmodel/attention_model.h) to flash_attention.csv, per chip.

Pure Python (no numpy): Nelder-Mead on the mean squared log error of predicted / published TFLOP/s over
the rows with split == fit; prints the fitted Hardware fields (proto/moesim.proto 30-37) and the error
on fit and held-out rows. The model here mirrors AttentionEfficiency() in costmodel/attention_model.cc;
attention_model_test.cc checks the C++ against the same rows.

  python3 validation/data/attention/fit_attention.py
"""
import csv, math, os

HERE = os.path.dirname(os.path.abspath(__file__))
PEAK = {"a100-sxm": 312e12, "h100-sxm": 989e12}   # proto/hardware_profiles.cc
TILES = {"a100-sxm": 108, "h100-sxm": 132}        # SMs: one 128-row tile in flight per SM
TILE_ROWS = 128


def rows():
    with open(os.path.join(HERE, "flash_attention.csv")) as f:
        lines = [l for l in f if not l.startswith("#")]
    return list(csv.DictReader(lines))


def eff(p, pas, hd, s, causal, tiles):
    """p: dict of the model's parameters; pas: 'fwd' or 'bwd'. Fraction of peak."""
    e, d0, l0 = p[pas + "_max"], p[pas + "_d_half"], p[pas + "_seq_half"]
    avg = s / 2.0 if causal else float(s)         # keys per query row (square call)
    x = e * hd / (hd + d0) * avg / (avg + l0)
    if causal:
        x *= avg / (avg + p["causal_block"] / 2.0)
    bh = (16384 // s) * (2048 // hd)
    n = bh * math.ceil(s / TILE_ROWS)
    waves = math.ceil(n / tiles)
    return x * n / (waves * tiles)


def predict(p, r, chip):
    hd, s, c = int(r["head_dim"]), int(r["seq_len"]), r["causal"] == "1"
    peak, tiles = PEAK[chip], TILES[chip]
    if r["pass"] == "fwd_bwd":
        ef, eb = eff(p, "fwd", hd, s, c, tiles), eff(p, "bwd", hd, s, c, tiles)
        return peak * 3.5 / (1 / ef + 2.5 / eb) / 1e12
    return peak * eff(p, r["pass"], hd, s, c, tiles) / 1e12


def nelder_mead(f, x0, steps, iters=6000):
    pts = [list(x0)] + [[x0[j] + (steps[i] if j == i else 0) for j in range(len(x0))]
                        for i in range(len(x0))]
    vals = [f(x) for x in pts]
    for _ in range(iters):
        order = sorted(range(len(pts)), key=lambda i: vals[i])
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        c = [sum(p[j] for p in pts[:-1]) / (len(pts) - 1) for j in range(len(x0))]
        xr = [c[j] + (c[j] - pts[-1][j]) for j in range(len(x0))]
        fr = f(xr)
        if fr < vals[0]:
            xe = [c[j] + 2 * (c[j] - pts[-1][j]) for j in range(len(x0))]
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = [c[j] + 0.5 * (pts[-1][j] - c[j]) for j in range(len(x0))]
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                pts = [pts[0]] + [[pts[0][j] + 0.5 * (p[j] - pts[0][j]) for j in range(len(x0))]
                                  for p in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
    i = min(range(len(pts)), key=lambda k: vals[k])
    return pts[i]


def fit(chip, kernel, names, unpack, x0):
    data = [r for r in rows() if r["chip"] == chip and r["kernel"] == kernel]
    train = [r for r in data if r["split"] == "fit"]

    def loss(x):
        if min(x) <= 0:
            return 1e9
        p = unpack(x)
        if p["fwd_max"] > 1 or p["bwd_max"] > 1:
            return 1e9
        return sum(math.log(predict(p, r, chip) / float(r["tflops"])) ** 2 for r in train)

    x = nelder_mead(loss, x0, [v * 0.3 for v in x0])
    x = nelder_mead(loss, x, [v * 0.1 for v in x])
    p = unpack(x)
    print(f"== {chip} {kernel}: {len(train)} fit rows, {len(data) - len(train)} held out")
    for k in names:
        print(f"  attention_{k}: {p[k]:.4g}")
    for split in ("fit", "holdout"):
        errs = [predict(p, r, chip) / float(r["tflops"]) - 1 for r in data if r["split"] == split]
        if errs:
            print(f"  {split}: mean |err| {100 * sum(map(abs, errs)) / len(errs):.1f}%, "
                  f"max |err| {100 * max(map(abs, errs)):.1f}%")
    return p


FULL = ["fwd_max", "bwd_max", "fwd_d_half", "bwd_d_half", "fwd_seq_half", "bwd_seq_half",
        "causal_block"]


def unpack_full(x):
    return dict(zip(FULL, x))


if __name__ == "__main__":
    fit("h100-sxm", "fa3", FULL, unpack_full, [0.75, 0.6, 60, 30, 200, 300, 128])
    fa2 = fit("h100-sxm", "fa2", FULL, unpack_full, [0.4, 0.35, 30, 30, 100, 300, 128])
    # A100 publishes fwd+bwd only: the backward's shape relative to the forward is FA2's own, as its
    # separate fwd and bwd figures on H100 give it (same kernel code); the A100 fit scales it.
    r = {k: fa2["bwd_" + k] / fa2["fwd_" + k] for k in ("max", "d_half", "seq_half")}
    print(f"  FA2 bwd/fwd ratios from H100: {r}")

    def unpack_a100(x):
        ef, d0, l0, b = x
        return {"fwd_max": ef, "bwd_max": ef * r["max"], "fwd_d_half": d0,
                "bwd_d_half": d0 * r["d_half"], "fwd_seq_half": l0,
                "bwd_seq_half": l0 * r["seq_half"], "causal_block": b}

    fit("a100-sxm", "fa2", FULL, unpack_a100, [0.7, 30, 100, 128])

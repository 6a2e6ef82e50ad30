#!/usr/bin/env python3
"""Runs duet-bench engine and llama.cpp (../shared/bench/llamacpp-bench.sh) alternately on the
same GGUF files and thread counts, and prints one table: prefill and decode tokens/s of both,
their ratios, and how far the greedy tokens and top logits agree.

    tools/compare-llamacpp.py --bench build-rel/tools/duet-bench --threads 1,2 \\
        --reps 2 /tmp/models/tl-q4_0.gguf /tmp/models/tl-q8_0.gguf

Each (model, threads) pair runs duet, then llama.cpp, --reps times; the table shows the
median of each side. --json-out FILE keeps every raw result.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PEER = os.path.join(HERE, "..", "..", "shared", "bench", "llamacpp-bench.sh")


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def agreement(duet, peer):
    """Leading greedy ids that agree, and the largest top-logit gap over steps that agree."""
    same = 0
    for a, b in zip(duet["generated_ids"], peer["generated_ids"]):
        if a != b:
            break
        same += 1
    worst = 0.0
    steps = min(len(duet["topk"]), len(peer["topk"]), same)
    for s in range(steps):
        mine = {t["id"]: t["logit"] for t in duet["topk"][s]["top"]}
        for t in peer["topk"][s]["top"]:
            if t["id"] in mine:
                worst = max(worst, abs(mine[t["id"]] - t["logit"]))
    return same, steps, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--bench", default="build-rel/tools/duet-bench")
    ap.add_argument("--peer", default=DEFAULT_PEER, help="llamacpp-bench.sh")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json-out")
    a = ap.parse_args()

    rows, raw = [], []
    for model in a.models:
        for t in [int(x) for x in a.threads.split(",")]:
            d_runs, p_runs = [], []
            for _ in range(a.reps):
                d_runs.append(run_json([a.bench, "engine", "-m", model, "-t", str(t), "-p",
                                        str(a.prompt_tokens), "-n", str(a.gen_tokens), "--json"]))
                p_runs.append(run_json([a.peer, "--model", model, "--threads", str(t),
                                        "--prompt-tokens", str(a.prompt_tokens),
                                        "--gen-tokens", str(a.gen_tokens)]))
                print(f"{os.path.basename(model)} t={t}: duet {d_runs[-1]['prefill']['tok_s']:.1f}"
                      f"/{d_runs[-1]['decode']['tok_s']:.1f}, llama.cpp "
                      f"{p_runs[-1]['prefill']['tok_s']:.1f}/{p_runs[-1]['decode']['tok_s']:.1f}",
                      file=sys.stderr)
            raw.append({"model": model, "threads": t, "duet": d_runs, "llama.cpp": p_runs})
            med = lambda runs, k: statistics.median(r[k]["tok_s"] for r in runs)
            same, steps, worst = agreement(d_runs[0], p_runs[0])
            rows.append((os.path.basename(model), d_runs[0]["quant"], t,
                         med(d_runs, "prefill"), med(p_runs, "prefill"),
                         med(d_runs, "decode"), med(p_runs, "decode"),
                         same, len(d_runs[0]["generated_ids"]), steps, worst))

    print("| model | type | threads | duet prefill | llama.cpp prefill | ratio | duet decode "
          "| llama.cpp decode | ratio | greedy ids equal | top-logit max diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m, q, t, dp, pp, dd, pd, same, n, steps, worst in rows:
        print(f"| {m} | {q} | {t} | {dp:.1f} | {pp:.1f} | {dp / pp:.2f} | {dd:.1f} | {pd:.1f} "
              f"| {dd / pd:.2f} | first {same} of {n} | {worst:.3f} ({steps} steps) |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(raw, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How well `teacher judge` separates good from bad responses on the labelled set
benches/data/judge_labelled.jsonl: 30 instructions, each with one correct response and
one deliberately bad one (14 wrong, 9 off-topic, 7 truncated), written for teacher.

For each model and mode (constrained, the default, and --unconstrained) it reports:
AUC of the quality score for good vs bad (ties count one half; unscored records get the
lowest score) — of the sampled score and of the probability-weighted
(G-Eval) expected score —, accuracy at "quality >= 6 is good", pairwise accuracy (per instruction:
good scored above bad = 1, tie = 1/2), the share of unscored judgements, mean quality of
good and of each kind of bad, and how many distinct scores the judge used.

Usage: python3 benches/judge_agreement.py [TEACHER_BIN] [MODEL ...]
"""
import json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
teacher = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/teacher")
models = sys.argv[2:] or ["smollm2-135m-instruct", "gemma3-270m"]
data = os.path.join(root, "benches/data/judge_labelled.jsonl")

def auc(pos, neg):
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))

for model in models:
    for mode in ([], ["--unconstrained"]):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "j.jsonl")
            t0 = time.time()
            subprocess.run([teacher, "judge", "--model", model, "--input", data, "--out", out,
                            "--batch", "16", *mode], check=True, capture_output=True)
            secs = time.time() - t0
            recs = [json.loads(l) for l in open(out)]
        q = lambda r: r["scores"]["quality"] if r["scores"]["quality"] is not None else 0
        ex = lambda r: r["scores"].get("quality_expected") or 0
        good = [q(r) for r in recs if r["label"] == "good"]
        bad = [q(r) for r in recs if r["label"] == "bad"]
        by_id = {r["id"]: q(r) for r in recs}
        pairs = [(by_id[f"lab-{i}-good"], by_id[f"lab-{i}-bad"]) for i in range(30)]
        kinds = {}
        for r in recs:
            kinds.setdefault(r["kind"], []).append(q(r))
        row = {
            "model": model, "mode": "unconstrained" if mode else "constrained",
            "auc": round(auc(good, bad), 3),
            "auc_expected": round(auc([ex(r) for r in recs if r["label"] == "good"],
                                      [ex(r) for r in recs if r["label"] == "bad"]), 3),
            "accuracy_at_6": round((sum(g >= 6 for g in good) + sum(b < 6 for b in bad)) / 60, 3),
            "pairwise": round(sum((g > b) + 0.5 * (g == b) for g, b in pairs) / 30, 3),
            "unscored_quality": sum(r["scores"]["quality"] is None for r in recs),
            "mean_quality": {k: round(sum(v) / len(v), 2) for k, v in sorted(kinds.items())},
            "distinct_scores": sorted({q(r) for r in recs}),
            "mean_complexity": round(sum(r["scores"]["complexity"] or 0 for r in recs) / 60, 2),
            "seconds": round(secs, 1),
        }
        print(json.dumps(row), flush=True)

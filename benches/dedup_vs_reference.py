#!/usr/bin/env python3
"""Near-duplicate filter benchmarks, ours beside the reference, in one run.

  python3 benches/dedup_vs_reference.py rouge N      # Self-Instruct's loop (rouge-score) vs teacher dedup on
                                                     # the first N cleaned-Alpaca instructions; decisions compared
  python3 benches/dedup_vs_reference.py stream50k    # teacher dedup on 50,000 instructions derived from Alpaca
  python3 benches/dedup_vs_reference.py minhash      # 1,000,000 short instructions with planted near-duplicates

Needs `cargo build --release` and `pip install rouge-score==0.1.2`. Prints a Markdown row per case.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = os.path.join(ROOT, "target", "release", "teacher")
ALPACA = os.path.join(ROOT, "..", "shared", "data", "alpaca_cleaned_first4096.json")


def alpaca():
    with open(ALPACA) as f:
        return [r["text"] for r in json.load(f)]


def write_jsonl(path, texts):
    with open(path, "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, "instruction": t}) + "\n")


def run_teacher(args, threads=None):
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    cmd = ["/usr/bin/time", "-f", "%M", TEACHER] + args + ["--json"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t0
    report = json.loads(p.stdout.strip().splitlines()[-1])
    peak_kb = int(p.stderr.strip().splitlines()[-1])
    return report, wall, peak_kb


def kept_ids(path):
    with open(path) as f:
        return [json.loads(l)["id"] for l in f]


def reference_loop(texts):
    """Self-Instruct's filter loop (bootstrap_instructions.py): each candidate scored with
    scorer.score against every kept instruction; one core, no pre-tokenisation."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept, ids, pairs = [], [], 0
    t0 = time.perf_counter()
    for i, t in enumerate(texts):
        scores = [scorer.score(t, k)["rougeL"].fmeasure for k in kept]
        pairs += len(scores)
        if not scores or max(scores) < 0.7:  # the paper's rule, as teacher's default
            kept.append(t)
            ids.append(i)
    return ids, time.perf_counter() - t0, pairs


def bench_rouge(n):
    texts = alpaca()[:n]
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        write_jsonl(inp, texts)
        ref_ids, ref_s, pairs = reference_loop(texts)
        rows = []
        for threads in (1, 2):
            report, wall, peak = run_teacher(["dedup", "--input", inp, "--out", out], threads)
            same = kept_ids(out) == ref_ids
            rows.append((threads, report, wall, same))
        print(f"| ROUGE-L stream, first {n} Alpaca | reference (rouge-score, 1 core) | {ref_s:.1f} s | "
              f"{len(ref_ids)} kept, {pairs} pairs, {1e6 * ref_s / max(pairs, 1):.1f} µs/pair |")
        for threads, report, wall, same in rows:
            p = report["rouge_pruning"]
            print(f"| ROUGE-L stream, first {n} Alpaca | teacher dedup, {threads} thread(s) | "
                  f"{report['seconds'] * 1000:.1f} ms in filter ({wall * 1000:.0f} ms process) | "
                  f"{report['kept']} kept, same decisions: {same}, speed-up {ref_s / report['seconds']:.0f}x; "
                  f"pairs {p['pairs']}: prefix skipped {100 * p['skipped_by_prefix'] / p['pairs']:.2f}%, "
                  f"length {100 * p['pruned_by_length'] / p['pairs']:.2f}%, multiset "
                  f"{100 * p['pruned_by_multiset'] / p['pairs']:.2f}%, LCS {100 * p['lcs_computed'] / p['pairs']:.3f}% |")


def derived_stream(n, seed=0):
    """n instructions derived from real Alpaca text: each a real instruction with 0-4 words
    replaced by words drawn from the whole set, so near-duplicates occur at realistic rates."""
    rng = random.Random(seed)
    base = alpaca()
    vocab = sorted({w for t in base for w in t.split()})
    out = []
    for _ in range(n):
        words = rng.choice(base).split()
        for _ in range(rng.randint(0, 4)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        out.append(" ".join(words))
    return out


def bench_stream50k():
    texts = derived_stream(50_000)
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        write_jsonl(inp, texts)
        for threads in (1, 2):
            report, wall, peak = run_teacher(["dedup", "--input", inp, "--out", out], threads)
            p = report["rouge_pruning"]
            print(f"| ROUGE-L stream, 50,000 derived | teacher dedup, {threads} thread(s) | {wall:.2f} s "
                  f"| {report['kept']} kept, peak RSS {peak / 1024:.0f} MB; pairs {p['pairs']}: prefix skipped "
                  f"{100 * p['skipped_by_prefix'] / p['pairs']:.3f}%, LCS {100 * p['lcs_computed'] / p['pairs']:.4f}% |")


def bench_minhash(n=1_000_000, planted=50_000, seed=1):
    """Short random instructions (8-20 words from a 5,000-word vocabulary) and `planted`
    near-duplicates of earlier items (one word changed, added or dropped); recall counts
    the planted items with true unigram Jaccard >= 0.8 to their original that were dropped."""
    rng = random.Random(seed)
    vocab = sorted({w.lower() for t in alpaca() for w in re.findall(r"[A-Za-z]+", t)})[:5000]
    texts, planted_at = [], {}
    for i in range(n - planted):
        texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(8, 20))))
    for _ in range(planted):
        j = rng.randrange(len(texts))
        w = texts[j].split()
        op = rng.randrange(3)
        if op == 0:
            w[rng.randrange(len(w))] = rng.choice(vocab)
        elif op == 1:
            w.insert(rng.randrange(len(w) + 1), rng.choice(vocab))
        else:
            del w[rng.randrange(len(w))]
        a, b = set(texts[j].split()), set(w)
        jac = len(a & b) / len(a | b)
        pos = rng.randrange(j + 1, len(texts) + 1)
        texts.insert(pos, " ".join(w))
        planted_at[id(texts[pos])] = jac
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        dropped = os.path.join(d, "dropped.jsonl")
        write_jsonl(inp, texts)
        strong = {i for i, t in enumerate(texts) if planted_at.get(id(t), 0) >= 0.8}
        report, wall, peak = run_teacher(
            ["dedup", "--method", "minhash", "--input", inp, "--out", out, "--dropped", dropped], 2)
        with open(dropped) as f:
            dropped_ids = {json.loads(l)["record"]["id"] for l in f}
        recall = len(strong & dropped_ids) / max(len(strong), 1)
        other = len(dropped_ids - {i for i, t in enumerate(texts) if id(t) in planted_at})
        m = report["minhash"]
        print(f"| MinHash-LSH, {n:,} short instructions | teacher dedup --method minhash, 2 threads | {wall:.1f} s | "
              f"{m['num_perm']} perms = {m['bands']} bands x {m['rows']} rows; recall of {len(strong)} planted pairs "
              f"(J >= 0.8) {recall:.4f}; other drops {other}; peak RSS {peak / 1024:.0f} MB |")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "rouge"
    if what == "rouge":
        bench_rouge(int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    elif what == "stream50k":
        bench_stream50k()
    elif what == "minhash":
        bench_minhash()

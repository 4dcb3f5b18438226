//! How varied a set of instructions is: the verb–noun structure of the Self-Instruct
//! paper's Figure 2 (`verb_noun`), distinct-n (Li et al. 2016, "A Diversity-Promoting
//! Objective Function for Neural Conversation Models": unique n-grams over all n-grams),
//! and similarity to a seed set (the paper's Figure 3).

pub mod verb_noun;

use crate::filter::rouge_l::RougeIndex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

/// Unique word n-grams over all n-grams of `texts` (lower-cased, whitespace words);
/// `None` when the texts hold no n-gram.
pub fn distinct_n<'a>(texts: impl IntoIterator<Item = &'a str>, n: usize) -> Option<f64> {
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut total = 0usize;
    for t in texts {
        let w: Vec<String> = t.split_whitespace().map(str::to_lowercase).collect();
        for g in w.windows(n) {
            total += 1;
            seen.insert(g.to_vec());
        }
    }
    (total > 0).then(|| seen.len() as f64 / total as f64)
}

/// Figure 2's data: how many instructions parse to a verb and to a verb with a noun
/// object, and the `top_verbs` most common verbs with their `top_nouns` most common
/// objects (ties broken alphabetically).
pub fn verb_noun_summary(instructions: &[&str], top_verbs: usize, top_nouns: usize) -> Value {
    let mut by_verb: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let (mut with_verb, mut with_noun) = (0, 0);
    for inst in instructions {
        if let Some((v, n)) = verb_noun::verb_noun(inst) {
            with_verb += 1;
            let e = by_verb.entry(v).or_default();
            if let Some(n) = n {
                with_noun += 1;
                e.0 += 1;
                *e.1.entry(n).or_default() += 1;
            }
        }
    }
    type Objects = (usize, BTreeMap<String, usize>);
    let mut verbs: Vec<(String, Objects)> =
        by_verb.into_iter().filter(|(_, (n, _))| *n > 0).collect();
    verbs.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    verbs.truncate(top_verbs);
    let top: Vec<Value> = verbs
        .into_iter()
        .map(|(v, (count, nouns))| {
            let mut ns: Vec<(String, usize)> = nouns.into_iter().collect();
            ns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ns.truncate(top_nouns);
            json!({"verb": v, "count": count, "nouns": ns.into_iter().map(|(n, c)| json!({"noun": n, "count": c})).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "instructions": instructions.len(),
        "with_verb": with_verb,
        "with_verb_and_noun": with_noun,
        "top": top,
        "parser": "rule-based imperative verb + head of the following noun phrase (teacher::diversity::verb_noun)",
    })
}

/// Each text's highest ROUGE-L F against `seeds` (0 when there are none).
pub fn nearest_seed_scores(seeds: &[&str], texts: &[&str]) -> Vec<f64> {
    let mut idx = RougeIndex::new();
    for (i, s) in seeds.iter().enumerate() {
        idx.insert(i as u64, s);
    }
    texts
        .iter()
        .map(|t| idx.max_similarity(t).map_or(0.0, |m| m.score))
        .collect()
}

/// A ten-bin histogram of scores in [0, 1].
pub fn histogram10(scores: &[f64]) -> Value {
    let mut hist = [0usize; 10];
    for s in scores {
        hist[((s * 10.0) as usize).min(9)] += 1;
    }
    json!(hist
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"from": i as f64 / 10.0, "to": (i + 1) as f64 / 10.0, "count": n}))
        .collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_n_counts_unique_ngrams() {
        assert_eq!(distinct_n(["a b a b"], 1), Some(0.5));
        assert_eq!(distinct_n(["a b a b"], 2), Some(2.0 / 3.0));
        assert_eq!(distinct_n(["A b", "a B"], 2), Some(0.5));
        assert_eq!(distinct_n(["one"], 2), None);
    }

    #[test]
    fn the_summary_ranks_verbs_and_their_nouns() {
        let s = verb_noun_summary(
            &[
                "Write a poem.",
                "Write a poem about rain.",
                "Write a story.",
                "List three fruits.",
                "What is 2+2?",
                "Explain why.",
            ],
            20,
            4,
        );
        assert_eq!(s["with_verb"], 5);
        assert_eq!(s["with_verb_and_noun"], 4);
        assert_eq!(s["top"][0]["verb"], "write");
        assert_eq!(s["top"][0]["count"], 3);
        assert_eq!(s["top"][0]["nouns"][0], json!({"noun": "poem", "count": 2}));
        assert_eq!(s["top"][1]["verb"], "list");
        // A verb never seen with a noun is not in the figure.
        assert_eq!(s["top"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn nearest_seed_and_histogram() {
        let s = nearest_seed_scores(
            &["write a poem about rain"],
            &["write a poem about rain", "x y z"],
        );
        assert_eq!(s, vec![1.0, 0.0]);
        let h = histogram10(&s);
        assert_eq!(h[9]["count"], 1);
        assert_eq!(h[0]["count"], 1);
    }
}

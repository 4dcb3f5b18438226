//! Teacher-forced comparison with another engine's greedy decoding (see
//! `benches/greedy_vs_llama_cpp.py`, which writes the input): for each case, feed the
//! prompt tokens and the other engine's greedy continuation through teacher's forward
//! pass and report the first step where teacher's argmax differs, the gap between
//! teacher's top two logits there, and the other engine's gap at that step.
//!
//!   cargo bench --bench greedy_departure -- CASES.json

use teacher_kernels::ops::KvType;
use teacher_models::forward::{Segment, Transformer};
use teacher_models::{LoadOptions, ModelFile};

fn top2(l: &[f32]) -> (usize, f32) {
    let (mut a, mut b) = (0usize, usize::MAX);
    for i in 1..l.len() {
        if l[i] > l[a] {
            b = a;
            a = i;
        } else if b == usize::MAX || l[i] > l[b] {
            b = i;
        }
    }
    (a, l[a] - l[b])
}

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| a.ends_with(".json"))
        .expect("usage: cargo bench --bench greedy_departure -- CASES.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("cases file")).unwrap();
    let model_path = v["model"].as_str().unwrap();
    let file = ModelFile::open(model_path.as_ref(), &LoadOptions::default()).unwrap();
    let model = Transformer::load(file.gguf.clone()).unwrap();
    println!("model: {model_path}\n");
    println!("| prompt | llama.cpp greedy | departs at step | teacher top-2 gap there | llama.cpp gap there |");
    println!("|---|---|---|---|---|");
    let (mut same, mut total) = (0, 0);
    for c in v["cases"].as_array().unwrap() {
        let ids = |k: &str| -> Vec<u32> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let (prompt, gen) = (ids("prompt_tokens"), ids("tokens"));
        let gaps: Vec<f64> = c["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let mut cache = model
            .new_cache_of(1, prompt.len() + gen.len() + 1, KvType::F16)
            .unwrap();
        let mut seq = prompt.clone();
        seq.extend_from_slice(&gen);
        // Logits after the prompt and after each forced token.
        let logits = model
            .step_every_token(
                &mut cache,
                &[Segment {
                    slot: 0,
                    tokens: &seq[..seq.len() - 1],
                    start: 0,
                    logits: true,
                }],
            )
            .unwrap();
        let mut departure = None;
        for (step, &t) in gen.iter().enumerate() {
            let (arg, gap) = top2(&logits[prompt.len() - 1 + step]);
            if arg as u32 != t {
                departure = Some((step, gap, gaps[step]));
                break;
            }
        }
        total += 1;
        let text = c["text"]
            .as_str()
            .unwrap()
            .replace('\n', "⏎")
            .replace('|', "\\|");
        let text: String = text.chars().take(60).collect();
        match departure {
            None => {
                same += 1;
                println!(
                    "| {} | {text} | — (all {} tokens agree) | | |",
                    c["prompt"].as_str().unwrap(),
                    gen.len()
                );
            }
            Some((s, g, lg)) => println!(
                "| {} | {text} | {s} | {g:.3} | {lg:.3} |",
                c["prompt"].as_str().unwrap()
            ),
        }
    }
    println!("\n{same} of {total} prompts agree on every token.");
}

//! A loaded model: GGUF header, hyper-parameters, tokenizer, chat template, weights.
//!
//! The forward pass here is candle-transformers' single-sequence quantized models,
//! one KV cache per `Model`: the numerical reference that the batched engine is tested
//! against (only tests use it; every command, `teacher complete` included, runs the
//! batched `forward`).

use crate::chat_template::{ChatTemplate, Message};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::hparams::{Arch, HParams};
use crate::tokenizer::TextTokenizer;
use candle_core::{Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How prompts are given to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// The model has a chat template: prompts are rendered conversations.
    Chat,
    /// A base model: prompts are plain text that the model continues.
    Completion,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A Hugging Face `tokenizer.json` that replaces the GGUF's tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// A Jinja chat template file that replaces the GGUF's.
    pub chat_template: Option<PathBuf>,
}

/// Everything about a GGUF that can be known without running it.
pub struct ModelFile {
    pub gguf: std::sync::Arc<GgufFile>,
    pub hparams: HParams,
    pub tokenizer: TextTokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// sha256 of the `--tokenizer` file when one replaced the GGUF's tokenizer.
    pub tokenizer_override_sha256: Option<String>,
    /// The longest text a prompt of the model's whole context can be: context length ×
    /// the longest token's text (stored forms are never shorter than the bytes they
    /// stand for). A chat template's render stops there, before a runaway render costs
    /// its tokenization.
    pub max_prompt_bytes: usize,
}

impl ModelFile {
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let gguf = std::sync::Arc::new(GgufFile::open(path)?);
        let hparams = HParams::from_gguf(&gguf)?;
        let (tokenizer, tokenizer_override_sha256) = match &opts.tokenizer {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                (
                    TextTokenizer::from_file(p, Some(&gguf))?,
                    Some(sha256_hex(&bytes)),
                )
            }
            None => (TextTokenizer::from_gguf(&gguf)?, None),
        };
        if tokenizer.vocab_size > hparams.vocab_size {
            return Err(Error::Model {
                path: path.to_path_buf(),
                what: format!(
                    "the tokenizer has {} tokens but the embedding only {} rows",
                    tokenizer.vocab_size, hparams.vocab_size
                ),
            });
        }
        let chat_template = match &opts.chat_template {
            Some(p) => {
                let src = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                Some(ChatTemplate::new(&src, &format!("`{}`", p.display()))?)
            }
            None => match gguf.get_str("tokenizer.chat_template")? {
                Some(src) => Some(ChatTemplate::new(
                    src,
                    &format!("the chat template in `{}`", path.display()),
                )?),
                None => None,
            },
        };
        let longest_token = (0..tokenizer.vocab_size as u32)
            .filter_map(|id| tokenizer.token_text(id))
            .map(str::len)
            .max()
            .unwrap_or(1)
            .max(1);
        let max_prompt_bytes = hparams.context_length.saturating_mul(longest_token);
        Ok(ModelFile {
            gguf,
            hparams,
            tokenizer,
            chat_template,
            tokenizer_override_sha256,
            max_prompt_bytes,
        })
    }

    /// What turns text into tokens and messages into prompts, as run parameters: the
    /// tokenizer (the GGUF's, or the sha256 of a `--tokenizer` file) and the sha256 of
    /// the chat template in use (null for none). A resume must match them.
    pub fn text_fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "tokenizer": self.tokenizer_override_sha256.clone().unwrap_or_else(|| "gguf".into()),
            "chat_template_sha256": self.chat_template.as_ref().map(|t| sha256_hex(t.source().as_bytes())),
        })
    }

    pub fn prompt_style(&self) -> PromptStyle {
        if self.chat_template.is_some() {
            PromptStyle::Chat
        } else {
            PromptStyle::Completion
        }
    }

    /// Render `messages` with the chat template, ready for the assistant's turn.
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let tmpl = self.chat_template.as_ref().ok_or_else(|| Error::Model {
            path: self.gguf.path().to_path_buf(),
            what: "has no chat template, so it cannot take messages\nhint: give a plain prompt (`--prompt`), or a template with `--chat-template FILE`".into(),
        })?;
        let text = |id: Option<u32>| {
            id.and_then(|i| self.tokenizer.token_text(i))
                .unwrap_or("")
                .to_string()
        };
        tmpl.render(
            messages,
            true,
            &text(self.tokenizer.bos),
            &text(self.tokenizer.eos),
            self.max_prompt_bytes,
        )
    }

    /// Magpie's pre-query template: the text of `history` followed by the opening of a
    /// new user turn, cut where the user's words would begin. Rendered by the model's
    /// own template with a placeholder user message (no generation prompt), so it is
    /// right for any template, not a table of known ones.
    pub fn pre_query(&self, history: &[Message]) -> Result<String> {
        const PLACEHOLDER: &str = "TEACHERMAGPIEQUERY7f3a9c";
        let tmpl = self.chat_template.as_ref().ok_or_else(|| Error::Model {
            path: self.gguf.path().to_path_buf(),
            what: "has no chat template, so it has no user turn to open (Magpie needs an instruction-tuned chat model)\nhint: use a chat model, or give its template with `--chat-template FILE`".into(),
        })?;
        let text = |id: Option<u32>| {
            id.and_then(|i| self.tokenizer.token_text(i))
                .unwrap_or("")
                .to_string()
        };
        let mut all = history.to_vec();
        all.push(Message::new("user", PLACEHOLDER));
        let rendered = tmpl.render(
            &all,
            false,
            &text(self.tokenizer.bos),
            &text(self.tokenizer.eos),
            self.max_prompt_bytes,
        )?;
        let mut hits = rendered.match_indices(PLACEHOLDER);
        match (hits.next(), hits.next()) {
            (Some((at, _)), None) if at > 0 => Ok(rendered[..at].to_string()),
            _ => Err(Error::Model {
                path: self.gguf.path().to_path_buf(),
                what: "has a chat template that does not write the user's message once and after some text, so no pre-query template can be cut from it\nhint: give a template that renders messages as they are with `--chat-template FILE`".into(),
            }),
        }
    }

    /// Token ids for a prompt: chat text parses special tokens (the template wrote
    /// them); BOS is added when the model asks for it and the text does not already
    /// start with it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text, true, true)?;
        if ids.len() >= 2
            && self.tokenizer.bos.is_some()
            && ids[0] == ids[1]
            && ids[0] == self.tokenizer.bos.unwrap()
        {
            ids.remove(0);
        }
        Ok(ids)
    }

    pub fn info(&self) -> ModelInfo {
        let mut quant: BTreeMap<String, usize> = BTreeMap::new();
        for t in &self.gguf.tensors {
            *quant.entry(t.type_name().to_string()).or_default() += 1;
        }
        ModelInfo {
            path: self.gguf.path().to_path_buf(),
            name: self
                .gguf
                .get_str("general.name")
                .ok()
                .flatten()
                .map(str::to_string),
            architecture: self.hparams.arch.as_str().to_string(),
            parameters: HParams::parameter_count(&self.gguf),
            file_bytes: self.gguf.file_size(),
            tensor_types: quant,
            context_length: self.hparams.context_length,
            n_layer: self.hparams.n_layer,
            n_embd: self.hparams.n_embd,
            n_head: self.hparams.n_head,
            n_head_kv: self.hparams.n_head_kv,
            tokenizer: self.tokenizer.kind.to_string(),
            vocab_size: self.tokenizer.vocab_size,
            chat_template: self.chat_template.is_some(),
            prompt_style: self.prompt_style(),
            license: self
                .gguf
                .get_str("general.license")
                .ok()
                .flatten()
                .map(str::to_string),
            sha256: None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: Option<String>,
    pub architecture: String,
    pub parameters: u64,
    pub file_bytes: u64,
    pub tensor_types: BTreeMap<String, usize>,
    pub context_length: usize,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub tokenizer: String,
    pub vocab_size: usize,
    pub chat_template: bool,
    pub prompt_style: PromptStyle,
    pub license: Option<String>,
    pub sha256: Option<String>,
}

enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// A model with weights on a device and one sequence's KV cache.
pub struct Model {
    pub file: ModelFile,
    weights: Weights,
    device: Device,
}

impl Model {
    pub fn load(file: ModelFile, device: &Device) -> Result<Self> {
        let content = file.gguf.to_candle_content();
        let mut reader = file.gguf.reader();
        let path = file.gguf.path().to_path_buf();
        let wrap = |e: candle_core::Error| Error::Model {
            path: path.clone(),
            what: format!("loading weights failed: {e}"),
        };
        let weights = match file.hparams.arch {
            Arch::Llama => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(wrap)?,
            ),
            Arch::Qwen2 => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(wrap)?,
            ),
            Arch::Qwen3 => Weights::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(wrap)?,
            ),
            Arch::Phi3 => Weights::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut reader, device)
                    .map_err(wrap)?,
            ),
            Arch::Gemma2 => {
                return Err(Error::Model {
                    path,
                    what: "candle-transformers has no quantized gemma2 model to compare with"
                        .into(),
                })
            }
            Arch::Gemma3 => Weights::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(wrap)?,
            ),
        };
        Ok(Model {
            file,
            weights,
            device: device.clone(),
        })
    }

    /// Feed `tokens` at positions `pos..pos+len` and return the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let x = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = match &mut self.weights {
            Weights::Llama(m) => m.forward(&x, pos)?,
            Weights::Qwen2(m) => m.forward(&x, pos)?,
            Weights::Qwen3(m) => m.forward(&x, pos)?,
            Weights::Phi3(m) => m.forward(&x, pos)?,
            Weights::Gemma3(m) => m.forward(&x, pos)?,
        };
        // The models return (batch, vocab) for the last position.
        let logits = logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?;
        let logits = if logits.rank() == 2 {
            logits.get(logits.dim(0)? - 1)?
        } else {
            logits
        };
        Ok(logits.to_vec1::<f32>()?)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

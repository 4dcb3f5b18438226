//! Tokenizers built from GGUF metadata with the `tokenizers` crate, encoding exactly as
//! llama.cpp does for the same file.
//!
//! - `tokenizer.ggml.model = gpt2`: byte-level BPE from `tokens` + `merges`, with the
//!   pre-tokenizer regex that llama.cpp picks from `tokenizer.ggml.pre`.
//! - `tokenizer.ggml.model = llama`: SentencePiece-style BPE from `tokens` + `scores`.
//!   llama.cpp merges the adjacent pair whose merged piece has the highest score; the
//!   same order is expressed as BPE merges ranked by that score (how Hugging Face
//!   converts SentencePiece BPE models), with byte fallback for unknown characters.
//!
//! Special tokens follow llama.cpp's token types: CONTROL tokens are only recognised in
//! text when special-token parsing is on; USER_DEFINED tokens are always recognised.

use crate::error::{Error, Result};
use crate::gguf::{value_as_u64, GgufFile};
use candle_core::quantized::gguf_file::Value;
use std::path::Path;
use std::sync::OnceLock;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

/// llama.cpp's `llama_token_type`.
const TOKEN_TYPE_NORMAL: i64 = 1;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
const TOKEN_TYPE_BYTE: i64 = 6;

/// Texts of tokens that end a turn in the chat formats teacher knows; used when the
/// GGUF names no `eot_token_id` (llama.cpp applies the same list).
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|endoftext|>",
    "<|end|>",
    "</s>",
    "<|end_of_text|>",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// Byte-level BPE (GPT-2 style), `tokenizer.ggml.model = gpt2`.
    Gpt2,
    /// SentencePiece BPE with scores, `tokenizer.ggml.model = llama`.
    Llama,
    /// Loaded from a Hugging Face `tokenizer.json` given by the user.
    HuggingFace,
}

impl std::fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenizerKind::Gpt2 => "gpt2 (byte-level BPE)",
            TokenizerKind::Llama => "llama (SentencePiece BPE)",
            TokenizerKind::HuggingFace => "tokenizer.json",
        })
    }
}

/// A model's tokenizer plus the special-token facts generation needs.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same tokenizer with special-token parsing off, built on first use.
    plain: OnceLock<Tokenizer>,
    pub kind: TokenizerKind,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Every token that ends generation (EOS and end-of-turn tokens).
    pub stop_tokens: Vec<u32>,
    pub add_bos: bool,
    pub vocab_size: usize,
    /// Token texts as stored in the GGUF (for chat-template variables such as bos_token).
    tokens: Vec<String>,
    /// Tokens that are not text (control, unused and undefined types): never part of
    /// a constrained output.
    not_text: Vec<bool>,
    /// The decoder strips one leading space (SentencePiece with `add_space_prefix`).
    strip_space: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

impl TextTokenizer {
    /// Build the tokenizer described by the GGUF's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path();
        let missing = |what: &str| Error::MissingTokenizer {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let model = gguf
            .get_str("tokenizer.ggml.model")?
            .ok_or_else(|| missing("metadata key `tokenizer.ggml.model` is absent"))?
            .to_string();
        let tokens = string_array(gguf, "tokenizer.ggml.tokens")?
            .ok_or_else(|| missing("metadata key `tokenizer.ggml.tokens` is absent"))?;
        if tokens.is_empty() {
            return Err(missing("`tokenizer.ggml.tokens` is empty"));
        }
        let n = tokens.len();
        let types = match gguf.get_array("tokenizer.ggml.token_type")? {
            Some(a) => {
                let t: Vec<i64> = a
                    .iter()
                    .map(value_as_i64)
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        md_err(
                            gguf,
                            "tokenizer.ggml.token_type",
                            "holds non-integer values",
                        )
                    })?;
                if t.len() != n {
                    return Err(md_err(
                        gguf,
                        "tokenizer.ggml.token_type",
                        format!("has {} entries but there are {n} tokens", t.len()),
                    ));
                }
                t
            }
            None => vec![TOKEN_TYPE_NORMAL; n],
        };
        let token_id = |key: &str| -> Result<Option<u32>> {
            match gguf.get_uint(key)? {
                None => Ok(None),
                Some(id) if (id as usize) < n => Ok(Some(id as u32)),
                Some(id) => Err(md_err(
                    gguf,
                    key,
                    format!("is {id}, outside the vocabulary of {n} tokens"),
                )),
            }
        };
        let bos = token_id("tokenizer.ggml.bos_token_id")?;
        let eos = token_id("tokenizer.ggml.eos_token_id")?;
        let eot = token_id("tokenizer.ggml.eot_token_id")?;
        let unk = token_id("tokenizer.ggml.unknown_token_id")?;
        let add_space_prefix = gguf
            .get_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(model == "llama");
        // llama.cpp's default for add_bos depends on the vocab type: SPM yes, BPE no.
        let add_bos = gguf
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(model == "llama");

        let (mut inner, kind) = match model.as_str() {
            "gpt2" => {
                let merges = string_array(gguf, "tokenizer.ggml.merges")?
                    .ok_or_else(|| missing("a gpt2 tokenizer needs `tokenizer.ggml.merges`"))?;
                let pre = gguf.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
                (build_gpt2(gguf, &tokens, &merges, pre)?, TokenizerKind::Gpt2)
            }
            "llama" => {
                let scores = match gguf.get_array("tokenizer.ggml.scores")? {
                    Some(a) => a
                        .iter()
                        .map(|v| match v {
                            Value::F32(x) => Some(*x),
                            _ => None,
                        })
                        .collect::<Option<Vec<f32>>>()
                        .ok_or_else(|| {
                            md_err(gguf, "tokenizer.ggml.scores", "holds non-f32 values")
                        })?,
                    None => return Err(missing("a llama tokenizer needs `tokenizer.ggml.scores`")),
                };
                if scores.len() != n {
                    return Err(md_err(
                        gguf,
                        "tokenizer.ggml.scores",
                        format!("has {} entries but there are {n} tokens", scores.len()),
                    ));
                }
                let unk_text = unk.map(|u| tokens[u as usize].clone());
                (
                    build_spm(&tokens, &scores, &types, unk_text, add_space_prefix)?,
                    TokenizerKind::Llama,
                )
            }
            other => {
                return Err(md_err(
                    gguf,
                    "tokenizer.ggml.model",
                    format!(
                        "is `{other}`; teacher builds `gpt2` and `llama` tokenizers\nhint: pass a Hugging Face `tokenizer.json` with `--tokenizer FILE`"
                    ),
                ))
            }
        };
        add_special_tokens(&mut inner, &tokens, &types)?;

        let mut stop_tokens: Vec<u32> = eos.into_iter().chain(eot).collect();
        for (id, (text, &ty)) in tokens.iter().zip(&types).enumerate() {
            if ty == TOKEN_TYPE_CONTROL && END_OF_TURN_TEXTS.contains(&text.as_str()) {
                stop_tokens.push(id as u32);
            }
        }
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        let not_text = types
            .iter()
            .map(|&t| {
                t != TOKEN_TYPE_NORMAL && t != TOKEN_TYPE_USER_DEFINED && t != TOKEN_TYPE_BYTE
            })
            .collect();
        Ok(TextTokenizer {
            inner,
            plain: OnceLock::new(),
            kind,
            bos,
            eos,
            stop_tokens,
            add_bos,
            vocab_size: n,
            tokens,
            not_text,
            strip_space: kind == TokenizerKind::Llama && add_space_prefix,
        })
    }

    /// A user-supplied Hugging Face `tokenizer.json`; special ids are kept from the
    /// GGUF when it has them, since the model was trained with those.
    pub fn from_file(path: &Path, gguf: Option<&GgufFile>) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("cannot load `{}`: {e}", path.display())))?;
        let vocab_size = inner.get_vocab_size(true);
        let from_gguf = gguf.and_then(|g| TextTokenizer::from_gguf(g).ok());
        let tokens = (0..vocab_size as u32)
            .map(|i| inner.id_to_token(i).unwrap_or_default())
            .collect();
        let (bos, eos, stop_tokens, add_bos) = match &from_gguf {
            Some(t) => (t.bos, t.eos, t.stop_tokens.clone(), t.add_bos),
            None => (None, None, vec![], false),
        };
        let special = inner.get_added_tokens_decoder();
        let not_text = (0..vocab_size as u32)
            .map(|i| special.get(&i).is_some_and(|t| t.special))
            .collect();
        Ok(TextTokenizer {
            inner,
            plain: OnceLock::new(),
            kind: TokenizerKind::HuggingFace,
            bos,
            eos,
            stop_tokens,
            add_bos,
            vocab_size,
            tokens,
            not_text,
            strip_space: false,
        })
    }

    /// Token ids for `text`. `parse_special`: recognise control-token text such as
    /// `<|im_start|>` (as llama.cpp's `parse_special`); `add_bos`: prepend BOS when the
    /// model wants it (`self.add_bos`).
    pub fn encode(&self, text: &str, parse_special: bool, add_bos: bool) -> Result<Vec<u32>> {
        let tok = if parse_special {
            &self.inner
        } else {
            self.plain.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        let enc = tok
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding failed: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_bos && self.add_bos {
            if let Some(b) = self.bos {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text for `ids`; control tokens (BOS, EOS, turn markers) are left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(format!("decoding failed: {e}")))
    }

    /// The stored text of one token (`<|im_start|>`, `▁the`, …).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(|s| s.as_str())
    }

    /// The bytes each token adds to the output, by id; None for tokens that are not
    /// text (control tokens, end of turn, unused ids). For constrained generation,
    /// which matches the output byte by byte.
    pub fn token_bytes(&self) -> Vec<Option<Vec<u8>>> {
        (0..self.vocab_size)
            .map(|i| {
                if self.not_text.get(i).copied().unwrap_or(true) {
                    return None;
                }
                let t = self.tokens.get(i)?;
                let bytes = match self.kind {
                    TokenizerKind::Gpt2 => t
                        .chars()
                        .map(gpt2_byte)
                        .collect::<Option<Vec<u8>>>()
                        .unwrap_or_else(|| t.as_bytes().to_vec()),
                    TokenizerKind::Llama => match byte_token(t) {
                        Some(b) => vec![b],
                        None => t.replace('\u{2581}', " ").into_bytes(),
                    },
                    TokenizerKind::HuggingFace => {
                        let s = self.inner.decode(&[i as u32], false).ok()?;
                        if s.contains('\u{FFFD}') {
                            return None;
                        }
                        s.into_bytes()
                    }
                };
                (!bytes.is_empty()).then_some(bytes)
            })
            .collect()
    }

    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_tokens.binary_search(&id).is_ok()
    }

    /// A decoder that keeps the text of a growing list of ids up to date a token at a
    /// time — `decode` of all of them, exactly — where this tokenizer's decoder is
    /// known: the two built from a GGUF. None for a user's `tokenizer.json`, whose
    /// decoders may join tokens any way (decode it whole).
    pub fn text_decoder(&self) -> Option<TextDecoder> {
        match self.kind {
            TokenizerKind::Gpt2 | TokenizerKind::Llama => Some(TextDecoder {
                kind: self.kind,
                strip_space: self.strip_space,
                pushed: 0,
                done: Vec::new(),
                run: Vec::new(),
            }),
            TokenizerKind::HuggingFace => None,
        }
    }
}

/// The text of a growing list of ids (`TextTokenizer::text_decoder`), what `decode` of
/// all of them gives, computed a token at a time. It follows the decoders the GGUF
/// tokenizers are built with (`tokenizers`' own, as it runs them):
/// - byte-level BPE: each token's characters as the bytes they stand for (its raw
///   UTF-8 when one is not in the table), all of them then read as UTF-8 once, an
///   invalid sequence becoming U+FFFD;
/// - SentencePiece: `▁` → space in each token; runs of byte tokens (`<0x41>`) become
///   their bytes when those are UTF-8, else one U+FFFD per byte; the pieces joined,
///   and one leading space stripped with `add_space_prefix`.
///
/// Special tokens are left out (`decode` skips them), as are ids without a token.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    kind: TokenizerKind,
    strip_space: bool,
    /// Ids pushed so far.
    pushed: usize,
    /// Byte-level: every byte so far. SentencePiece: the text of the tokens before the
    /// byte run still open.
    done: Vec<u8>,
    /// SentencePiece: the bytes of the byte tokens since the last other token.
    run: Vec<u8>,
}

impl TextDecoder {
    /// Add the next id (with the tokenizer that made this decoder).
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) {
        self.pushed += 1;
        let Some(t) = tok.inner.id_to_token(id) else {
            return;
        };
        if tok.inner.get_added_vocabulary().is_special_token(&t) {
            return;
        }
        match self.kind {
            TokenizerKind::Llama => {
                let t = t.replace('\u{2581}', " ");
                // `byte_token` reads a byte token as `ByteFallback` does: `<0x`, two
                // bytes that parse as a hexadecimal byte, `>`.
                match byte_token(&t) {
                    Some(b) => self.run.push(b),
                    None => {
                        close_run(&mut self.done, &self.run);
                        self.run.clear();
                        self.done.extend_from_slice(t.as_bytes());
                    }
                }
            }
            _ => match t.chars().map(gpt2_byte).collect::<Option<Vec<u8>>>() {
                Some(bytes) => self.done.extend(bytes),
                None => self.done.extend_from_slice(t.as_bytes()),
            },
        }
    }

    /// How many ids were pushed.
    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// The text of every id pushed so far.
    pub fn text(&self) -> String {
        match self.kind {
            TokenizerKind::Llama => {
                let mut bytes = self.done.clone();
                close_run(&mut bytes, &self.run);
                // Every piece was a whole string, so these bytes are UTF-8.
                let mut text = String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                if self.strip_space && text.starts_with(' ') {
                    text.remove(0);
                }
                text
            }
            _ => String::from_utf8_lossy(&self.done).into_owned(),
        }
    }
}

/// A finished run of byte tokens, as `ByteFallback` turns it into text.
fn close_run(to: &mut Vec<u8>, run: &[u8]) {
    if run.is_empty() {
        return;
    }
    if std::str::from_utf8(run).is_ok() {
        to.extend_from_slice(run);
    } else {
        for _ in run {
            to.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

fn md_err(gguf: &GgufFile, key: &str, what: impl Into<String>) -> Error {
    Error::Metadata {
        path: gguf.path().to_path_buf(),
        key: key.to_string(),
        what: what.into(),
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match *v {
        Value::I8(x) => Some(x as i64),
        Value::I16(x) => Some(x as i64),
        Value::I32(x) => Some(x as i64),
        Value::I64(x) => Some(x),
        _ => value_as_u64(v).and_then(|x| i64::try_from(x).ok()),
    }
}

fn string_array(gguf: &GgufFile, key: &str) -> Result<Option<Vec<String>>> {
    let Some(a) = gguf.get_array(key)? else {
        return Ok(None);
    };
    a.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(md_err(
                gguf,
                key,
                format!("should hold strings, found {:?}", other.value_type()),
            )),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

fn vocab_map(tokens: &[String]) -> tokenizers::models::bpe::Vocab {
    let mut vocab = tokenizers::models::bpe::Vocab::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        // A duplicated token text keeps its first id, as llama.cpp's text_to_token does.
        vocab.entry(t.clone()).or_insert(i as u32);
    }
    vocab
}

/// llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), by `tokenizer.ggml.pre`.
fn gpt2_pre_tokenizer(gguf: &GgufFile, pre: &str) -> Result<PreTokenizerWrapper> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let regex_then_bytes = |re: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tk_err)?;
        Ok(PreSequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])
        .into())
    };
    match pre {
        // ByteLevel's own regex is GPT-2's.
        "default" | "gpt2" | "gpt-2" | "olmo" | "jais" => {
            Ok(ByteLevel::new(false, false, true).into())
        }
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            Ok(PreSequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, false, true).into(),
            ])
            .into())
        }
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "falcon3" | "pixtral" => {
            regex_then_bytes(LLAMA3)
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" => regex_then_bytes(QWEN2),
        _ => Err(md_err(
                gguf,
                "tokenizer.ggml.pre",
                format!(
                    "is `{pre}`, a pre-tokenizer teacher does not know\nhint: pass the model's Hugging Face `tokenizer.json` with `--tokenizer FILE`"
                ),
            )),
    }
}

fn build_gpt2(
    gguf: &GgufFile,
    tokens: &[String],
    merges: &[String],
    pre: &str,
) -> Result<Tokenizer> {
    let vocab = vocab_map(tokens);
    let mut pairs = Vec::with_capacity(merges.len());
    for (line, m) in merges.iter().enumerate() {
        let (a, b) = m.split_once(' ').ok_or_else(|| {
            md_err(
                gguf,
                "tokenizer.ggml.merges",
                format!("entry {line} `{m}` is not two tokens separated by a space"),
            )
        })?;
        pairs.push((a.to_string(), b.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .ignore_merges(false)
        .build()
        .map_err(tk_err)?;
    let mut t = Tokenizer::new(bpe);
    t.with_pre_tokenizer(Some(gpt2_pre_tokenizer(gguf, pre)?));
    t.with_decoder(Some(DecoderWrapper::from(ByteLevelDecoder::default())));
    Ok(t)
}

fn build_spm(
    tokens: &[String],
    scores: &[f32],
    types: &[i64],
    unk: Option<String>,
    add_space_prefix: bool,
) -> Result<Tokenizer> {
    let vocab = vocab_map(tokens);
    // Every way to split a piece into two pieces of the vocabulary is a merge; llama.cpp
    // prefers the pair whose result scores highest, leftmost first, which is BPE ranking
    // by the merged piece's score.
    let mut merges: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types[id] != TOKEN_TYPE_NORMAL && types[id] != TOKEN_TYPE_USER_DEFINED {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                merges.push((scores[id], id as u32, li, ri));
            }
        }
    }
    merges.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let pairs = merges
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect::<Vec<_>>();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk {
        builder = builder.unk_token(u);
    }
    let bpe = builder.build().map_err(tk_err)?;
    let mut t = Tokenizer::new(bpe);
    let mut norms: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        norms.push(Prepend::new("▁".to_string()).into());
    }
    norms.push(Replace::new(" ", "▁").map_err(tk_err)?.into());
    t.with_normalizer(Some(NormalizerSequence::new(norms)))
        .map_err(tk_err)?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        tokenizers::decoders::DecoderWrapper::Replace(Replace::new("▁", " ").map_err(tk_err)?),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    t.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(t)
}

/// The byte a GPT-2 byte-level character stands for (its `bytes_to_unicode` table:
/// printable Latin-1 bytes are themselves, the other 68 are U+0100 onwards in order).
fn gpt2_byte(c: char) -> Option<u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let cp = c as u32;
    if printable(cp) {
        return Some(cp as u8);
    }
    let k = cp.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(k as usize)
        .map(|b| b as u8)
}

/// SentencePiece byte-fallback pieces: `<0x0A>` is byte 10.
fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

fn add_special_tokens(t: &mut Tokenizer, tokens: &[String], types: &[i64]) -> Result<()> {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (text, &ty) in tokens.iter().zip(types) {
        if text.is_empty() {
            continue;
        }
        match ty {
            TOKEN_TYPE_CONTROL => {
                special.push(AddedToken::from(text.clone(), true).normalized(false))
            }
            TOKEN_TYPE_USER_DEFINED => {
                user.push(AddedToken::from(text.clone(), false).normalized(false))
            }
            _ => {}
        }
    }
    t.add_special_tokens(special).map_err(tk_err)?;
    t.add_tokens(user).map_err(tk_err)?;
    Ok(())
}

//! teacher-models: GGUF files, the tokenizers and chat templates inside them, the model
//! catalog and provisioning, and the forward pass.

pub mod catalog;
pub mod chat_template;
pub mod error;
pub mod fetch;
pub mod forward;
pub mod gguf;
pub mod gguf_write;
pub mod hparams;
pub mod memory;
pub mod model;
pub mod synth;
pub mod tokenizer;

pub use catalog::{Catalog, CatalogEntry};
pub use chat_template::{ChatTemplate, Message};
pub use error::{Error, Result};
pub use gguf::GgufFile;
pub use hparams::{Arch, HParams};
pub use model::{LoadOptions, Model, ModelFile, ModelInfo, PromptStyle};
pub use tokenizer::{TextDecoder, TextTokenizer, TokenizerKind};

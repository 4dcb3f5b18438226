//! The one error type of `teacher-models`.
//!
//! Every message says what was wrong, where (file, tensor, metadata key) and, where
//! there is something the user can do, a `hint:` line saying what.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a GGUF file (magic bytes {found:?}, expected \"GGUF\")\nhint: pass a `.gguf` model file, a catalog name (`teacher models list`) or `hf:REPO/FILE`")]
    NotGguf { path: PathBuf, found: String },

    #[error("`{path}` is a malformed GGUF file: {what}\nhint: the file is damaged or truncated; download it again")]
    MalformedGguf { path: PathBuf, what: String },

    /// A bad argument given to the library (a shape or type name, say).
    #[error("{0}")]
    Usage(String),

    #[error("`{path}`: metadata key `{key}` {what}")]
    Metadata {
        path: PathBuf,
        key: String,
        what: String,
    },

    #[error("`{path}` has architecture `{arch}`, which teacher does not support\nhint: supported architectures are {supported}")]
    UnsupportedArchitecture {
        path: PathBuf,
        arch: String,
        supported: String,
    },

    #[error("`{path}`: tensor `{tensor}` {what}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        what: String,
    },

    #[error("`{path}` has no tokenizer: {what}\nhint: pass a Hugging Face `tokenizer.json` with `--tokenizer FILE`")]
    MissingTokenizer { path: PathBuf, what: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}")]
    ChatTemplate(String),

    #[error("unknown model `{name}`{suggestion}\nhint: `teacher models list` shows the catalog; a path to a `.gguf` file or `hf:REPO/FILE` also works")]
    UnknownModel { name: String, suggestion: String },

    #[error("catalog: {0}")]
    Catalog(String),

    #[error("download of `{name}` failed: {what}")]
    Download { name: String, what: String },

    #[error("sha256 mismatch for `{name}`: expected {expected}, got {actual}\nhint: the download was damaged or the package changed; nothing was kept in the cache, try again")]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },

    #[error("`{name}` is not in the local cache and the network is off (--offline / TEACHER_OFFLINE=1)\nhint: run `teacher models pull {name}` on a machine that is online and copy `{cache}` here, or pass a local `.gguf` path")]
    Offline { name: String, cache: PathBuf },

    #[error("`{name}` is not in the Hugging Face cache and the network is off (--offline / TEACHER_OFFLINE=1 / HF_HUB_OFFLINE=1)\nhint: run any teacher command with `--model {name}` on a machine that is online (it downloads into the Hugging Face cache) and copy `{cache}` here, or pass a local `.gguf` path")]
    OfflineHf { name: String, cache: PathBuf },

    #[error("model `{path}`: {what}")]
    Model { path: PathBuf, what: String },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

//! The one error type of the `teacher` crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] teacher_models::Error),

    #[error("invalid sampling settings: {0}")]
    Sampling(#[from] teacher_kernels::SamplingError),

    #[error("{0}")]
    Usage(String),

    #[error("`{path}`: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A record in an input file that cannot be used.
    #[error("`{path}` line {line}: {what}")]
    Input {
        path: std::path::PathBuf,
        line: usize,
        what: String,
    },

    /// Writing to stdout failed (e.g. the reader closed the pipe).
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

//! The engine's error type: every failure names what went wrong and, for weights, the file and tensor.

use std::path::{Path, PathBuf};

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, grouped so that a C ABI can map each group to a code.
#[derive(Debug)]
pub enum Error {
    /// A caller-supplied value is out of range or inconsistent (size, steps, strength, buffer…).
    InvalidArgument(String),
    /// A file could not be opened or read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A weight or JSON file is not valid (truncated, corrupt header, bad offsets).
    CorruptFile { path: PathBuf, reason: String },
    /// A tensor the model needs is absent from every file of the component.
    MissingTensor {
        component: String,
        tensor: String,
        files: Vec<PathBuf>,
    },
    /// A tensor exists but has the wrong shape or an unsupported dtype.
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    /// The model layout (folder structure or key naming) was not recognised.
    UnknownLayout(String),
    /// A tokenizer file is missing or cannot be parsed.
    Tokenizer {
        path: Option<PathBuf>,
        reason: String,
    },
    /// The run was cancelled by its step hook.
    Cancelled,
    /// An error from the tensor library during computation.
    Compute(candle_core::Error),
    /// Writing an image failed.
    Image(String),
    /// This build or the engine's device cannot do it (GPU memory without CUDA, on a CPU engine).
    Unsupported(String),
    /// Something the engine waits on (a host's GPU semaphore) did not happen in time.
    Timeout(String),
    /// The machine could not give `bytes` bytes for `what` (host memory, or device memory on the
    /// GPU); the job fails and the engine stays usable.
    OutOfMemory { what: String, bytes: u64 },
    /// A computation turned NaN or infinite (named: which output, which step).
    NonFinite(String),
    /// No such job on the engine: never submitted, or released.
    UnknownJob(u64),
    /// A caller's buffer holds `given` bytes where `needed` are written.
    BufferTooSmall { needed: usize, given: usize },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::UnknownJob(id) => write!(f, "unknown or released job {id}"),
            Error::BufferTooSmall { needed, given } => {
                write!(f, "the buffer holds {given} bytes and {needed} are needed")
            }
            Error::NonFinite(what) => write!(
                f,
                "{what} is not finite (NaN or infinite values): the weights may be corrupt or badly converted, or the guidance too extreme"
            ),
            Error::OutOfMemory { what, bytes } => {
                write!(f, "out of memory: cannot allocate {bytes} bytes for {what}")
            }
            Error::Io { path, source } => write!(f, "cannot read '{}': {source}", path.display()),
            Error::CorruptFile { path, reason } => {
                let format = match path.extension().and_then(|e| e.to_str()) {
                    Some("gguf") => "GGUF",
                    Some("json") => "JSON",
                    _ => "safetensors",
                };
                write!(
                    f,
                    "'{}' is not a valid {format} file: {reason}",
                    path.display()
                )
            }
            Error::MissingTensor {
                component,
                tensor,
                files,
            } => {
                let files: Vec<String> =
                    files.iter().map(|p| format!("'{}'", p.display())).collect();
                write!(
                    f,
                    "{component}: tensor '{tensor}' is missing from {}",
                    files.join(", ")
                )
            }
            Error::BadTensor {
                path,
                tensor,
                reason,
            } => {
                write!(f, "tensor '{tensor}' in '{}': {reason}", path.display())
            }
            Error::UnknownLayout(m) => write!(f, "unknown model layout: {m}"),
            Error::Tokenizer {
                path: Some(p),
                reason,
            } => {
                write!(f, "tokenizer '{}': {reason}", p.display())
            }
            Error::Tokenizer { path: None, reason } => write!(f, "tokenizer: {reason}"),
            Error::Cancelled => write!(f, "cancelled"),
            Error::Compute(e) => write!(f, "compute error: {e}"),
            Error::Image(m) => write!(f, "image error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Compute(e) => Some(e),
            _ => None,
        }
    }
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        match e {
            candle_core::Error::WithBacktrace { inner, .. } => Error::Compute(*inner),
            other => Error::Compute(other),
        }
    }
}

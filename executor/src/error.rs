//! The executor's error type: what the builder sees when a container or a file operation could
//! not be prepared, started or committed.

use std::io;

/// Why the executor could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Namespaces and overlay mounts need root; the text says what needed them.
    #[error("{0}; run strata as root")]
    NeedsRoot(&'static str),
    #[error("runtime {0:?} is not installed (not found on PATH)")]
    RuntimeNotFound(String),
    #[error(transparent)]
    User(#[from] crate::user::UserError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("building the runtime spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("compiling the seccomp filter: {0}")]
    Seccomp(#[from] crate::seccomp::Error),
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    InRoot {
        what: &'static str,
        source: strata_cache::inroot::InRootError,
    },
    #[error("the copying snapshotter keeps no separate writable layer to commit")]
    NoWritableLayer,
    #[error(transparent)]
    Store(#[from] strata_cache::images::ImageError),
    /// binfmt_misc could not be set up as asked.
    #[error("{0}")]
    Binfmt(String),
    /// The file-operation process failed; its own message.
    #[error("{0}")]
    FileOp(String),
}

/// Adds what was being done to an I/O error, as [`ExecError::Io`].
pub(crate) trait IoContext<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, ExecError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, ExecError> {
        self.map_err(|e| ExecError::Io {
            what: what(),
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_say_what_was_being_done() {
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
            .doing(|| "creating /x".into())
            .unwrap_err();
        assert!(matches!(e, ExecError::Io { .. }));
        assert_eq!(e.to_string(), "creating /x: entity not found");
        assert_eq!(
            ExecError::NeedsRoot("file operations need root (overlay mounts)").to_string(),
            "file operations need root (overlay mounts); run strata as root"
        );
    }
}

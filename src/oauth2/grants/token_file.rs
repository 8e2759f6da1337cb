//! Tokens a platform writes to a file and rotates (a Kubernetes projected
//! service-account token, a CI system's OIDC token): read afresh each time.

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, TokenError};
use crate::secret::Secret;

/// The largest token file read. Kubernetes tokens are about 1 KiB and SAML
/// assertions rarely pass 20 KiB; anything larger is the wrong file.
pub(crate) const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

/// A token file that could not be used. Never shows the file's contents.
///
/// ```
/// use tower_bearer::oauth2::{SecurityToken, TokenExchange, TokenFileError, TokenType};
/// # use tower_bearer::oauth2::TokenEndpoint;
/// use tower_bearer::{ErrorKind, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let endpoint = TokenEndpoint::builder("https://sts.example.com/token").build().unwrap();
/// let subject = SecurityToken::from_file("/nonexistent/token", TokenType::JWT);
/// let err = TokenExchange::new(endpoint, subject).fetch().await.unwrap_err();
/// // The platform may not have written it yet: worth trying again later.
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// let cause = err.cause().and_then(|c| c.downcast_ref::<TokenFileError>());
/// assert!(matches!(cause, Some(TokenFileError::Io { .. })));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is empty (or only whitespace): being written, perhaps.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than 64 KiB.
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file holds something other than one token: text that is not
    /// UTF-8, or whitespace or control characters inside it.
    NotAToken {
        /// The file.
        path: PathBuf,
    },
}

impl TokenFileError {
    /// Transient when the file is missing, unreadable or empty (a platform
    /// that has not written it yet, a rotation in progress); permanent when
    /// it holds something that is not a token, which only a change of
    /// configuration mends.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TokenFileError::Io { .. } | TokenFileError::Empty { .. } => ErrorKind::Transient,
            TokenFileError::TooLarge { .. } | TokenFileError::NotAToken { .. } => {
                ErrorKind::Permanent
            }
        }
    }
}

impl fmt::Display for TokenFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The I/O error is the source, not repeated here.
            TokenFileError::Io { path, .. } => {
                write!(f, "cannot read token file {}", path.display())
            }
            TokenFileError::Empty { path } => write!(f, "token file {} is empty", path.display()),
            TokenFileError::TooLarge { path } => write!(
                f,
                "token file {} is larger than {MAX_TOKEN_FILE_BYTES} bytes",
                path.display()
            ),
            TokenFileError::NotAToken { path } => write!(
                f,
                "token file {} does not hold one token (not UTF-8, or whitespace inside)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TokenFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<TokenFileError> for TokenError {
    fn from(err: TokenFileError) -> Self {
        TokenError::from_cause(err.kind(), err, None)
    }
}

/// Reads the token in the file at `path` now, off the async threads.
pub(crate) async fn read(path: &Path) -> Result<Secret, TokenFileError> {
    let owned = path.to_owned();
    match tokio::task::spawn_blocking(move || read_now(&owned)).await {
        Ok(result) => result,
        Err(join) => Err(TokenFileError::Io {
            path: path.to_owned(),
            source: io::Error::other(join.to_string()),
        }),
    }
}

fn read_now(path: &Path) -> Result<Secret, TokenFileError> {
    let io_error = |source| TokenFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(MAX_TOKEN_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    token_in(&bytes).map_err(|problem| problem.at(path))
}

/// What is wrong with a token file's contents.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    Empty,
    TooLarge,
    NotAToken,
}

impl Problem {
    fn at(self, path: &Path) -> TokenFileError {
        let path = path.to_owned();
        match self {
            Problem::Empty => TokenFileError::Empty { path },
            Problem::TooLarge => TokenFileError::TooLarge { path },
            Problem::NotAToken => TokenFileError::NotAToken { path },
        }
    }
}

/// The token in a file's `bytes`: trimmed of the whitespace around it (a
/// final newline), and nothing else.
fn token_in(bytes: &[u8]) -> Result<Secret, Problem> {
    if bytes.len() > MAX_TOKEN_FILE_BYTES {
        return Err(Problem::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Problem::NotAToken)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Problem::Empty);
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Problem::NotAToken);
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_holds_one_token_and_the_whitespace_around_it() {
        let big = vec![b'a'; MAX_TOKEN_FILE_BYTES + 1];
        let most = vec![b'a'; MAX_TOKEN_FILE_BYTES];
        for (bytes, expected) in [
            (&b"eyJ.a.b"[..], Ok("eyJ.a.b")),
            (b"eyJ.a.b\n", Ok("eyJ.a.b")),
            (b"\r\n  eyJ.a.b \t\r\n", Ok("eyJ.a.b")),
            (b"", Err(Problem::Empty)),
            (b" \n\t", Err(Problem::Empty)),
            (b"two tokens", Err(Problem::NotAToken)),
            (b"a\nb", Err(Problem::NotAToken)),
            (b"a\x1bb", Err(Problem::NotAToken)),
            (b"\xff\xfe", Err(Problem::NotAToken)),
            (&big, Err(Problem::TooLarge)),
        ] {
            let got = token_in(bytes);
            assert_eq!(
                got.as_ref().map(Secret::expose),
                expected.as_ref().map(|s| *s),
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(20)])
            );
        }
        assert_eq!(
            token_in(&most).unwrap().expose().len(),
            MAX_TOKEN_FILE_BYTES
        );
    }

    #[test]
    fn missing_and_empty_files_are_transient_garbage_is_permanent() {
        let path = PathBuf::from("/t");
        for (problem, kind) in [
            (Problem::Empty, ErrorKind::Transient),
            (Problem::TooLarge, ErrorKind::Permanent),
            (Problem::NotAToken, ErrorKind::Permanent),
        ] {
            assert_eq!(problem.at(&path).kind(), kind);
        }
        let io = TokenFileError::Io {
            path,
            source: io::ErrorKind::NotFound.into(),
        };
        assert_eq!(io.kind(), ErrorKind::Transient);
    }
}

//! Errors a function (or anything on its way to one) can end in. One `kind()` decides the HTTP
//! status, whether a retry can help, and the metric label, so the three never disagree.

/// What kind of failure this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input can never succeed (corrupt, too large, wrong type). Permanent: never retried.
    BadInput,
    /// The input was refused before it ran because the body was over the function's limit.
    TooLarge,
    /// Something that may work next time (I/O, a device hiccup). Retried with backoff.
    Transient,
    /// The invocation ran past its deadline.
    Timeout,
    /// Could not be scheduled: the pool is full. The caller should back off and retry.
    Overloaded,
    /// Could not be scheduled: the server is shutting down or the function is not serving.
    Unavailable,
}

impl ErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadInput => 422,
            ErrorKind::TooLarge => 413,
            ErrorKind::Transient => 500,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 429,
            ErrorKind::Unavailable => 503,
        }
    }

    /// Whether running the same input again may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Transient
                | ErrorKind::Timeout
                | ErrorKind::Overloaded
                | ErrorKind::Unavailable
        )
    }

    /// The `outcome` label value of the invocation counter.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Transient => "transient",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// A failure with its kind and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FnError {
    kind: ErrorKind,
    reason: String,
}

impl FnError {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        FnError {
            kind,
            reason: reason.into(),
        }
    }
    pub fn bad_input(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, reason)
    }
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, reason)
    }
    pub fn timeout(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, reason)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_status_retry_and_label_consistently() {
        assert_eq!(ErrorKind::BadInput.http_status(), 422);
        assert!(!ErrorKind::BadInput.retryable());
        assert!(!ErrorKind::TooLarge.retryable());
        assert_eq!(ErrorKind::Overloaded.http_status(), 429);
        assert!(ErrorKind::Overloaded.retryable());
        assert_eq!(ErrorKind::Timeout.label(), "timeout");
        assert_eq!(FnError::bad_input("x").kind(), ErrorKind::BadInput);
    }
}

//! An HTTP answer without framework types: what the proxy's operations produce and what the HTTP
//! layer writes. It lives apart from both so that neither has to know the other.

use serde_json::{Value, json};

/// Status, JSON body and extra headers of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// A JSON answer without extra headers.
    pub fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// OpenWhisk's error body `{"error", "code"}`.
    pub fn error(status: u16, message: impl Into<String>, code: &str) -> Self {
        Self::json(status, json!({"error": message.into(), "code": code}))
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

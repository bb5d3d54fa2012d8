//! The four outcomes of an activation, their codes in the stored record (`response.statusCode`),
//! OpenWhisk's words for them (`response.status`) and the HTTP status a blocking caller gets.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How an activation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationStatus {
    /// `0`: the action returned a result.
    Success,
    /// `1`: the action returned `{"error": ...}`.
    ApplicationError,
    /// `2`: the action's code failed (init failure, crash, timeout, invalid result).
    DeveloperError,
    /// `3`: the platform failed.
    WhiskError,
}

impl ActivationStatus {
    /// `response.statusCode` in the stored record.
    pub fn code(self) -> u8 {
        match self {
            ActivationStatus::Success => 0,
            ActivationStatus::ApplicationError => 1,
            ActivationStatus::DeveloperError => 2,
            ActivationStatus::WhiskError => 3,
        }
    }

    /// From a stored code; anything unknown is a whisk internal error.
    pub fn from_code(code: u64) -> Self {
        match code {
            0 => ActivationStatus::Success,
            1 => ActivationStatus::ApplicationError,
            2 => ActivationStatus::DeveloperError,
            _ => ActivationStatus::WhiskError,
        }
    }

    /// `response.status` as OpenWhisk words it.
    pub fn text(self) -> &'static str {
        match self {
            ActivationStatus::Success => "success",
            ActivationStatus::ApplicationError => "application error",
            ActivationStatus::DeveloperError => "action developer error",
            ActivationStatus::WhiskError => "whisk internal error",
        }
    }

    /// From OpenWhisk's words; anything unknown is a whisk internal error.
    pub fn from_text(text: &str) -> Self {
        match text {
            "success" => ActivationStatus::Success,
            "application error" => ActivationStatus::ApplicationError,
            "action developer error" => ActivationStatus::DeveloperError,
            _ => ActivationStatus::WhiskError,
        }
    }

    pub fn is_success(self) -> bool {
        self == ActivationStatus::Success
    }

    /// What OpenWhisk's controller answers a blocking invoke with: 200 success, 502 application
    /// or developer error, 500 whisk internal error.
    pub fn http_status(self) -> u16 {
        match self {
            ActivationStatus::Success => 200,
            ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => 502,
            ActivationStatus::WhiskError => 500,
        }
    }

    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ActivationStatus::Success => "success",
            ActivationStatus::ApplicationError => "application_error",
            ActivationStatus::DeveloperError => "developer_error",
            ActivationStatus::WhiskError => "internal_error",
        }
    }
}

impl Serialize for ActivationStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for ActivationStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_code(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_texts_and_http_statuses_agree() {
        for (s, code, text, http) in [
            (ActivationStatus::Success, 0, "success", 200),
            (
                ActivationStatus::ApplicationError,
                1,
                "application error",
                502,
            ),
            (
                ActivationStatus::DeveloperError,
                2,
                "action developer error",
                502,
            ),
            (ActivationStatus::WhiskError, 3, "whisk internal error", 500),
        ] {
            assert_eq!(s.code(), code);
            assert_eq!(s.text(), text);
            assert_eq!(s.http_status(), http);
            assert_eq!(ActivationStatus::from_code(code as u64), s);
            assert_eq!(ActivationStatus::from_text(text), s);
        }
        assert_eq!(ActivationStatus::from_code(9), ActivationStatus::WhiskError);
    }
}

//! The stand-in's clock, as Kubernetes timestamps (without needing jiff's `std` feature): one
//! definition for the API server and the kubelet.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The current time (without needing jiff's `std` feature).
pub(crate) fn now_ts() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn now() -> Time {
    Time(now_ts())
}

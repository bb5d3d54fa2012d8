//! Web actions: OpenWhisk's `/api/v1/web/{namespace}/{package|default}/{action}[.ext][/rest]`,
//! served on the data plane like any invoke (compat §7).
//!
//! A web request names an action another namespace owns and usually carries no credentials: the
//! action runs under its **owner's** identity and limits, if it was exported (`web-export`).
//! Read in order: [`path`] (what the URL names), [`export`] (what the action's annotations allow),
//! [`admit`] (the decision: owner, export, limits, `require-whisk-auth`, CORS preflight),
//! [`args`] (the HTTP request becomes the action's argument, with the `__ow_*` context) and
//! [`result`] (the activation's result becomes the HTTP response, per extension); [`cache`]
//! answers a repeated `GET` of an action that caches.

pub mod admit;
pub mod args;
pub mod cache;
pub mod cors;
pub mod export;
pub mod path;
pub mod result;

//! OpenWhisk's default CORS answer for web actions: unless an action handles `OPTIONS` itself
//! (`web-custom-options: true`), the router answers a preflight `200` with these headers and adds
//! them to every response.

/// `Access-Control-Allow-Methods` as OpenWhisk sends it.
pub const ALLOW_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
/// `Access-Control-Allow-Headers` when the request names none.
pub const DEFAULT_ALLOW_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// The CORS headers for a request whose `Access-Control-Request-Headers` is `requested`.
pub fn headers(requested: Option<&str>) -> [(&'static str, String); 3] {
    [
        ("access-control-allow-origin", "*".to_owned()),
        ("access-control-allow-methods", ALLOW_METHODS.to_owned()),
        (
            "access-control-allow-headers",
            requested.unwrap_or(DEFAULT_ALLOW_HEADERS).to_owned(),
        ),
    ]
}

//! The router's own calls to container proxies, for everything Envoy does not forward itself:
//! non-blocking invokes (answered 202 at once, then run here), sequences (component by
//! component), and a forwarded invoke replayed elsewhere after its container's 429.
//!
//! [`client`] speaks HTTP to one proxy; [`invoke`] calls until a container answers, moving the
//! activation on when one refuses, and replays a refused forwarded invoke; [`background`] runs
//! what the client does not wait for; [`lifetime`] keeps an abandoned activation's slots until
//! it ends; [`sequence`] runs sequences; [`web`] runs web actions; [`context`] is the one list
//! of context headers every invoke carries, forwarded by Envoy or sent from here.

pub mod background;
pub mod client;
pub mod context;
pub mod invoke;
pub mod lifetime;
pub mod sequence;
pub mod web;

/// What the router holds of a request to send it (again) itself: who asked, under which
/// transaction, and the body. Kept for a replay after a 429, for an invoke the router runs
/// itself, and for a cache lookup.
#[derive(Debug, Clone, Default)]
pub struct KeptRequest {
    /// The client's `Authorization`, passed on for actions allowed to see their API key.
    pub authorization: Option<String>,
    pub transaction_id: String,
    pub body: Vec<u8>,
    /// A web request's argument, made by the router: it may carry the `__ow_*` context
    /// (`x-whisk-web` tells the proxy; a client's copy of that header never reaches it).
    pub web: bool,
}

impl KeptRequest {
    pub fn new(authorization: Option<&str>, transaction_id: &str) -> Self {
        Self {
            authorization: authorization.map(str::to_owned),
            transaction_id: transaction_id.to_owned(),
            body: Vec::new(),
            web: false,
        }
    }

    /// Appends a chunk of the body.
    pub fn extend(&mut self, chunk: Vec<u8>) {
        if self.body.is_empty() {
            self.body = chunk;
        } else {
            self.body.extend_from_slice(&chunk);
        }
    }
}

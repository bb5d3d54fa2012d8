//! Which requests the proxy serves at all: only those a router (or, for `/_whisk/init`, the
//! control plane) vouched for with this container's token in `x-whisk-container-token`. Anyone
//! else on the network — including the code of other actions — that calls the proxy directly gets
//! 403 and nothing runs. The token comes from the control plane when it starts the proxy
//! (environment `WHISK_CONTAINER_TOKEN`, removed from the proxy's environment at start-up, so the
//! action can never read it); a proxy started without one refuses everything but health checks.

use serde_json::json;
use whisk_vocab::ContainerToken;

use crate::answer::Answer;

/// The check in front of init, invoke and the activation-end wait.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    token: ContainerToken,
}

impl Gate {
    pub fn new(token: ContainerToken) -> Self {
        if token.is_empty() {
            tracing::warn!(
                "no container token ({}): every invoke and init will be refused",
                whisk_vocab::token::CONTAINER_TOKEN_ENV
            );
        }
        Self { token }
    }

    /// `Ok` when `presented` (the request's `x-whisk-container-token`) is this container's token,
    /// else the 403 to answer. Compared in constant time.
    pub fn admit(&self, presented: Option<&str>) -> Result<(), Answer> {
        match presented {
            Some(presented) if self.token.matches(presented) => Ok(()),
            presented => {
                tracing::warn!(
                    token_presented = presented.is_some(),
                    "refused a request without this container's token"
                );
                Err(Answer::json(
                    403,
                    json!({"error": "This container serves only requests routed to it."}),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_passes() {
        let token = ContainerToken::generate();
        let gate = Gate::new(token.clone());
        assert!(gate.admit(None).is_err());
        assert_eq!(gate.admit(Some("nope")).unwrap_err().status, 403);
        assert!(gate.admit(Some(token.expose())).is_ok());
        let open = Gate::new(ContainerToken::default());
        assert!(open.admit(Some("")).is_err());
    }
}

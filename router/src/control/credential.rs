//! The router's credential towards the control plane (issue 13, "Trust boundaries").
//!
//! The control plane admits a router's calls only with its router token, sent as gRPC metadata
//! `authorization: Bearer <token>`. The token comes from a file (`--controlplane-token-file`: the
//! control plane's `router-token`, or a mounted Secret in a cluster), read at start and again
//! before every resubscription, so a rotated Secret is picked up without a restart. [`Bearer`]
//! adds the header to every call the router's gRPC client makes. Without a file, no header is
//! sent (a control plane that checks will refuse the router).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use whisk_proto::controlplane::v1::control_plane_client::ControlPlaneClient;

/// The router's gRPC client of the control plane: every call carries the token.
pub type Client = ControlPlaneClient<InterceptedService<Channel, Bearer>>;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the control-plane token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the control-plane token file {0} is empty or holds characters a header cannot carry")]
    Invalid(PathBuf),
}

/// The token this router presents, as the header value it becomes.
#[derive(Debug, Default)]
pub struct ControlPlaneToken {
    path: Option<PathBuf>,
    header: ArcSwapOption<AsciiMetadataValue>,
}

impl ControlPlaneToken {
    /// No token: calls go out without the header.
    pub fn none() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The token in `path`, read now.
    pub fn from_file(path: &Path) -> Result<Arc<Self>, TokenError> {
        let token = Self {
            path: Some(path.to_path_buf()),
            header: ArcSwapOption::from_pointee(read(path)?),
        };
        Ok(Arc::new(token))
    }

    /// Reads the file again (a rotated Secret); on failure the token already held stays.
    pub fn reload(&self) -> Result<(), TokenError> {
        if let Some(path) = &self.path {
            self.header.store(Some(Arc::new(read(path)?)));
        }
        Ok(())
    }

    /// Where the token comes from, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn read(path: &Path) -> Result<AsciiMetadataValue, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Invalid(path.to_path_buf()));
    }
    let mut value: AsciiMetadataValue = format!("Bearer {token}")
        .parse()
        .map_err(|_| TokenError::Invalid(path.to_path_buf()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(pub Arc<ControlPlaneToken>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = self.0.header.load_full() {
            request
                .metadata_mut()
                .insert("authorization", (*value).clone());
        }
        Ok(request)
    }
}

/// Whether the control plane refused a call for its credential.
pub fn is_refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_becomes_a_bearer_header_and_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let token = ControlPlaneToken::from_file(&path).unwrap();
        let mut bearer = Bearer(token.clone());
        let header = |b: &mut Bearer| {
            b.call(tonic::Request::new(()))
                .unwrap()
                .metadata()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header(&mut bearer).as_deref(), Some("Bearer abc"));
        std::fs::write(&path, "def").unwrap();
        token.reload().unwrap();
        assert_eq!(header(&mut bearer).as_deref(), Some("Bearer def"));
        std::fs::remove_file(&path).unwrap();
        assert!(token.reload().is_err());
        assert_eq!(header(&mut bearer).as_deref(), Some("Bearer def"));
        assert_eq!(header(&mut Bearer(ControlPlaneToken::none())), None);
    }

    #[test]
    fn an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            ControlPlaneToken::from_file(&path),
            Err(TokenError::Invalid(_))
        ));
    }
}

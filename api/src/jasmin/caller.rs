//! Who is calling: the gateway, and the address the request came from. Failed
//! authentications are counted per address and username by the same guard SMPP binds
//! use (`smpp_core::server::AccessGuard`): repeated failures are slowed down, then
//! locked out, and a locked-out caller gets the authentication failure unverified.

use std::{
    net::{IpAddr, SocketAddr},
    ops::Deref,
    sync::Arc,
};

use router::{Gateway, Refusal, user::User};
use smpp_core::server::{AccessGuard, GuardConfig};

use super::{Failure, Params};

/// The state of the Jasmin routes.
#[derive(Clone)]
pub struct Api {
    pub gateway: Arc<Gateway>,
    pub guard: Arc<AccessGuard>,
}

impl Api {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self {
            gateway,
            guard: AccessGuard::new(GuardConfig::default()),
        }
    }

    pub fn caller(&self, peer: SocketAddr) -> Caller<'_> {
        Caller {
            gateway: &self.gateway,
            guard: &self.guard,
            ip: peer.ip(),
        }
    }
}

/// One request's view: the gateway (through `Deref`) and where the request came from.
pub struct Caller<'a> {
    gateway: &'a Gateway,
    guard: &'a AccessGuard,
    ip: IpAddr,
}

impl Deref for Caller<'_> {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        self.gateway
    }
}

impl Caller<'_> {
    /// The request's user, with Jasmin's answer for an unknown user, a wrong password or
    /// a locked-out address alike.
    pub async fn authenticate(&self, args: &Params) -> Result<Arc<User>, Failure> {
        let username = args.text("username").unwrap_or_default();
        let password = args.text("password").unwrap_or_default();
        if self.guard.is_locked(self.ip, &username) {
            return Err(Refusal::Authentication { username }.into());
        }
        match self.gateway.authenticate(&username, &password).await {
            Ok(user) => {
                self.guard.cleared(self.ip, &username);
                Ok(user)
            }
            Err(refusal) => {
                tokio::time::sleep(self.guard.failed(self.ip, &username)).await;
                Err(refusal.into())
            }
        }
    }
}

//! Who is connected and bound, and the door through which the router pushes deliver_sm
//! (receipts and MO) to a user's receiver and transceiver binds.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use rusmpp::{CommandStatus, Pdu};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::handler::SessionInfo;

/// A deliver_sm or data_sm for an ESME, with an optional way to learn its fate.
#[derive(Debug)]
pub struct Outbound {
    /// Boxed so that queues of these stay small.
    pub pdu: Box<Pdu>,
    pub reply: Option<oneshot::Sender<OutboundResult>>,
}

impl Outbound {
    pub fn new(pdu: impl Into<Pdu>) -> Self {
        Self {
            pdu: Box::new(pdu.into()),
            reply: None,
        }
    }

    /// Also return a receiver for the ESME's answer.
    pub fn with_reply(pdu: impl Into<Pdu>) -> (Self, oneshot::Receiver<OutboundResult>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                pdu: Box::new(pdu.into()),
                reply: Some(tx),
            },
            rx,
        )
    }

    pub(crate) fn finish(self, result: OutboundResult) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }
}

/// What became of an [`Outbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundResult {
    /// The ESME answered with this command_status.
    Answered(CommandStatus),
    /// No answer within the response timeout.
    Timeout,
    /// The session closed before an answer.
    Closed,
}

/// Why an [`Outbound`] could not be queued; it comes back so nothing is lost.
#[derive(Debug)]
pub enum DeliverError {
    /// No receiver or transceiver bind for that system_id.
    NotBound(Outbound),
    /// Every such session's queue is full.
    Full(Outbound),
}

impl DeliverError {
    pub fn into_outbound(self) -> Outbound {
        match self {
            Self::NotBound(o) | Self::Full(o) => o,
        }
    }
}

#[derive(Debug)]
struct Entry {
    info: Arc<SessionInfo>,
    outbound: mpsc::Sender<Outbound>,
    /// Cancelled to make the session unbind (its user was disabled or removed).
    unbind: CancellationToken,
}

#[derive(Debug, Default)]
struct UserSessions {
    sessions: Vec<Entry>,
    next: usize,
}

/// Shared by the listener, the sessions and the router.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    users: Mutex<HashMap<Arc<str>, UserSessions>>,
    connections: AtomicUsize,
    next_id: AtomicU64,
}

impl SessionRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queue a PDU on one of the user's receiving sessions, in rotation.
    pub fn deliver(&self, system_id: &str, outbound: Outbound) -> Result<u64, DeliverError> {
        let mut users = self.lock();
        let Some(user) = users.get_mut(system_id) else {
            return Err(DeliverError::NotBound(outbound));
        };
        let receivers = user.sessions.len();
        let mut outbound = outbound;
        let mut any_receiver = false;
        for step in 0..receivers {
            let index = (user.next + step) % receivers;
            let entry = &user.sessions[index];
            if !entry.info.kind.can_receive() {
                continue;
            }
            any_receiver = true;
            match entry.outbound.try_send(outbound) {
                Ok(()) => {
                    user.next = index + 1;
                    return Ok(entry.info.id);
                }
                Err(mpsc::error::TrySendError::Full(back))
                | Err(mpsc::error::TrySendError::Closed(back)) => outbound = back,
            }
        }
        if any_receiver {
            Err(DeliverError::Full(outbound))
        } else {
            Err(DeliverError::NotBound(outbound))
        }
    }

    /// Number of bound sessions of `system_id` that can receive.
    pub fn receivers(&self, system_id: &str) -> usize {
        self.lock().get(system_id).map_or(0, |user| {
            user.sessions
                .iter()
                .filter(|e| e.info.kind.can_receive())
                .count()
        })
    }

    /// Every bound session.
    pub fn bound_sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.lock()
            .values()
            .flat_map(|user| user.sessions.iter().map(|e| e.info.clone()))
            .collect()
    }

    /// Asks every bound session of `system_id` to unbind (as at shutdown: unbind, wait
    /// for unbind_resp, close); returns how many were asked.
    pub fn unbind(&self, system_id: &str) -> usize {
        self.lock().get(system_id).map_or(0, |user| {
            for entry in &user.sessions {
                entry.unbind.cancel();
            }
            user.sessions.len()
        })
    }

    /// Open TCP connections, bound or not.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn open_connection(self: &Arc<Self>, max: usize) -> Option<ConnectionGuard> {
        let previous = self.connections.fetch_add(1, Ordering::AcqRel);
        if previous >= max {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionGuard {
            registry: self.clone(),
        })
    }

    /// Register a bound session unless the user already has `max` of them.
    pub(crate) fn register(
        self: &Arc<Self>,
        info: Arc<SessionInfo>,
        outbound: mpsc::Sender<Outbound>,
        max: usize,
        unbind: CancellationToken,
    ) -> Option<BoundGuard> {
        let mut users = self.lock();
        let user = users.entry(info.system_id.clone()).or_default();
        if user.sessions.len() >= max {
            return None;
        }
        user.sessions.push(Entry {
            info: info.clone(),
            outbound,
            unbind,
        });
        Some(BoundGuard {
            registry: self.clone(),
            info,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, UserSessions>> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a connection until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    registry: Arc<SessionRegistry>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.registry.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Keeps a session registered as bound until dropped.
#[derive(Debug)]
pub(crate) struct BoundGuard {
    registry: Arc<SessionRegistry>,
    info: Arc<SessionInfo>,
}

impl Drop for BoundGuard {
    fn drop(&mut self) {
        let mut users = self.registry.lock();
        if let Some(user) = users.get_mut(&self.info.system_id) {
            user.sessions.retain(|e| e.info.id != self.info.id);
            if user.sessions.is_empty() {
                users.remove(&self.info.system_id);
            }
        }
    }
}

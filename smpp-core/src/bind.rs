//! Bind kinds, shared by both sides.

use crate::frame::ids;

/// How a session is bound: what it may send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    pub fn from_command_id(id: u32) -> Option<Self> {
        match id {
            ids::BIND_TRANSMITTER => Some(Self::Transmitter),
            ids::BIND_RECEIVER => Some(Self::Receiver),
            ids::BIND_TRANSCEIVER => Some(Self::Transceiver),
            _ => None,
        }
    }

    pub fn command_id(self) -> u32 {
        match self {
            Self::Transmitter => ids::BIND_TRANSMITTER,
            Self::Receiver => ids::BIND_RECEIVER,
            Self::Transceiver => ids::BIND_TRANSCEIVER,
        }
    }

    /// May the ESME submit on this bind?
    pub fn can_submit(self) -> bool {
        !matches!(self, Self::Receiver)
    }

    /// May the SMSC deliver on this bind?
    pub fn can_receive(self) -> bool {
        !matches!(self, Self::Transmitter)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transmitter => "transmitter",
            Self::Receiver => "receiver",
            Self::Transceiver => "transceiver",
        }
    }
}

impl std::str::FromStr for BindKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tx" | "transmitter" => Ok(Self::Transmitter),
            "rx" | "receiver" => Ok(Self::Receiver),
            "trx" | "transceiver" => Ok(Self::Transceiver),
            other => Err(format!(
                "unknown bind type {other:?} (transmitter, receiver or transceiver)"
            )),
        }
    }
}

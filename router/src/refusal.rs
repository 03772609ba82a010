//! Every reason a message is refused, mapped one-to-one to Jasmin's HTTP answer
//! (status + exact body of docs/jasmin-compat.md §1.4) and to an SMPP command_status (§6.4).

use proto::charging::ChargeError;
use smpp_core::rusmpp::CommandStatus;

/// A refused message. `Display` gives the text inside Jasmin's `Error "…"` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Authentication failure for username:{username}")]
    Authentication { username: String },
    #[error("Authorization failed for user [{username}] ({reason}).")]
    Authorization {
        username: String,
        reason: AuthorizationKind,
    },
    #[error("Value filter failed for user [{username}] ({field} filter mismatch).")]
    ValueFilter {
        username: String,
        field: ValueFilterField,
    },
    #[error("User throughput exceeded")]
    Throughput,
    /// Billing refused the charge; the reason goes to the log, Jasmin's text to the client.
    #[error("Cannot charge submit_sm, check RouterPB log file for details")]
    Charging(ChargeError),
    /// Billing cannot record more now (its store is away or behind): back off and retry
    /// (our addition; Jasmin has no such state). Same text as `Charging`.
    #[error("Cannot charge submit_sm, check RouterPB log file for details")]
    ChargingBusy,
    #[error("No route found")]
    NoRoute,
    #[error("Failover route has no bound connectors")]
    NoBoundConnector,
    /// The connector's queue is full: back off and retry (our addition, Jasmin would block).
    #[error("Cannot send submit_sm, check SMPPClientManagerPB log file for details")]
    QueueFull,
    /// The journal's write queue is full: back off and retry (our addition).
    #[error("Cannot send submit_sm, check SMPPClientManagerPB log file for details")]
    JournalBusy,
    /// The queue (or the log under it) failed.
    #[error("Cannot send submit_sm, check SMPPClientManagerPB log file for details")]
    Enqueue,
    /// An interceptor script asked for this rejection.
    #[error("Interception specific error code {http_status}")]
    Intercepted { smpp_status: u32, http_status: u16 },
    #[error("Failed running interception script, check log for details")]
    InterceptorFailed,
    #[error("Argument [{name}] has an invalid value: [{value}].")]
    InvalidArgument { name: String, value: String },
    /// A TLV that cannot be accepted as sent (e.g. message_payload beside short_message).
    #[error("Invalid TLV {name}")]
    InvalidTlv { name: &'static str },
    #[error("Unknown error: {0}")]
    Unknown(String),
}

/// The reason texts of Jasmin's authorization failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationKind {
    Send,
    LongContent,
    DlrLevel,
    DlrMethod,
    SourceAddress,
    Priority,
    ValidityPeriod,
    HexContent,
    ScheduleDeliveryTime,
}

impl std::fmt::Display for AuthorizationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Send => "Cannot send MT messages",
            Self::LongContent => "Long content not authorized",
            Self::DlrLevel => "Setting dlr level not authorized",
            Self::DlrMethod => "Setting dlr method not authorized",
            Self::SourceAddress => "Setting source address not authorized",
            Self::Priority => "Setting priority not authorized",
            Self::ValidityPeriod => "Setting validity period not authorized",
            Self::HexContent => "Setting hex content not authorized",
            Self::ScheduleDeliveryTime => "Setting schedule delivery time not authorized",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFilterField {
    DestinationAddress,
    SourceAddress,
    Priority,
    ValidityPeriod,
    Content,
}

impl std::fmt::Display for ValueFilterField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DestinationAddress => "destination_address",
            Self::SourceAddress => "source_address",
            Self::Priority => "priority",
            Self::ValidityPeriod => "validity_period",
            Self::Content => "content",
        })
    }
}

impl Refusal {
    /// The submit_sm_resp status (docs/jasmin-compat.md §6.4).
    pub fn smpp_status(&self) -> CommandStatus {
        match self {
            Self::Authentication { .. } => CommandStatus::EsmeRinvpaswd,
            Self::Authorization { .. } => CommandStatus::EsmeRinvsysid,
            Self::ValueFilter { field, .. } => match field {
                ValueFilterField::DestinationAddress => CommandStatus::EsmeRinvdstadr,
                ValueFilterField::SourceAddress => CommandStatus::EsmeRinvsrcadr,
                ValueFilterField::Priority => CommandStatus::EsmeRinvprtflg,
                ValueFilterField::ValidityPeriod => CommandStatus::EsmeRinvexpiry,
                ValueFilterField::Content => CommandStatus::EsmeRsyserr,
            },
            Self::Throughput | Self::ChargingBusy | Self::JournalBusy => {
                CommandStatus::EsmeRthrottled
            }
            Self::Charging(_) => CommandStatus::EsmeRsyserr,
            Self::NoRoute => CommandStatus::EsmeRinvdstadr,
            Self::NoBoundConnector | Self::Enqueue => CommandStatus::EsmeRsubmitfail,
            Self::QueueFull => CommandStatus::EsmeRmsgqful,
            Self::Intercepted { smpp_status, .. } => CommandStatus::from(*smpp_status),
            Self::InterceptorFailed => CommandStatus::EsmeRsyserr,
            Self::InvalidArgument { .. } => CommandStatus::EsmeRinvmsglen,
            Self::InvalidTlv { .. } => CommandStatus::EsmeRinvtlvval,
            Self::Unknown(_) => CommandStatus::EsmeRunknownerr,
        }
    }

    /// The HTTP status of Jasmin's `/send` answer.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Authorization { .. }
            | Self::ValueFilter { .. }
            | Self::InterceptorFailed
            | Self::InvalidArgument { .. }
            | Self::InvalidTlv { .. } => 400,
            Self::Authentication { .. } | Self::Throughput | Self::Charging(_) => 403,
            Self::NoRoute | Self::NoBoundConnector => 412,
            // A full queue is temporary: 503 tells HTTP clients to come back.
            Self::QueueFull | Self::ChargingBusy | Self::JournalBusy => 503,
            Self::Enqueue | Self::Unknown(_) => 500,
            Self::Intercepted { http_status, .. } => *http_status,
        }
    }

    /// The exact body Jasmin sends: `Error "<text>"`.
    pub fn http_body(&self) -> String {
        format!("Error \"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_statuses_match_jasmin() {
        let r = Refusal::ChargingBusy;
        assert_eq!(r.smpp_status(), CommandStatus::EsmeRthrottled);
        assert_eq!(r.http_status(), 503);
        let r = Refusal::NoRoute;
        assert_eq!(r.http_body(), "Error \"No route found\"");
        assert_eq!(r.http_status(), 412);
        assert_eq!(r.smpp_status(), CommandStatus::EsmeRinvdstadr);
        let r = Refusal::Authorization {
            username: "bank".into(),
            reason: AuthorizationKind::SourceAddress,
        };
        assert_eq!(
            r.http_body(),
            "Error \"Authorization failed for user [bank] (Setting source address not authorized).\""
        );
        assert_eq!(r.http_status(), 400);
        let r = Refusal::ValueFilter {
            username: "bank".into(),
            field: ValueFilterField::SourceAddress,
        };
        assert_eq!(
            r.to_string(),
            "Value filter failed for user [bank] (source_address filter mismatch)."
        );
        assert_eq!(r.smpp_status(), CommandStatus::EsmeRinvsrcadr);
        assert_eq!(
            Refusal::Throughput.smpp_status(),
            CommandStatus::EsmeRthrottled
        );
        assert_eq!(Refusal::Throughput.http_status(), 403);
        let r = Refusal::Intercepted {
            smpp_status: 0x45,
            http_status: 418,
        };
        assert_eq!(
            r.http_body(),
            "Error \"Interception specific error code 418\""
        );
        assert_eq!(r.smpp_status(), CommandStatus::EsmeRsubmitfail);
    }
}

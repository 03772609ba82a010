//! Jasmin's `mt_messaging_cred`: authorizations and value filters applied to each MT.

use regex::bytes::Regex;

use crate::{
    config::{ConfigError, ValueFiltersConfig},
    model::{Message, Origin},
    refusal::{AuthorizationKind, Refusal, ValueFilterField},
    user::User,
};

/// Compile a regex with Python `re.match` semantics (anchored at the start only).
pub fn compile_prefix_regex(pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(&format!("^(?:{pattern})"))
        .map_err(|e| ConfigError::Invalid(format!("bad regex {pattern:?}: {e}")))
}

#[derive(Debug, Default)]
pub struct ValueFilters {
    pub dst_addr: Option<Regex>,
    pub src_addr: Option<Regex>,
    pub priority: Option<Regex>,
    pub validity_period: Option<Regex>,
    pub content: Option<Regex>,
}

impl ValueFilters {
    pub fn compile(config: &ValueFiltersConfig) -> Result<Self, ConfigError> {
        // A filter equal to Jasmin's default accepts everything: skip it.
        let compile = |p: &Option<String>, default: &str| -> Result<Option<Regex>, ConfigError> {
            match p {
                Some(p) if p != default => compile_prefix_regex(p).map(Some),
                _ => Ok(None),
            }
        };
        Ok(Self {
            dst_addr: compile(&config.dst_addr, ".*")?,
            src_addr: compile(&config.src_addr, ".*")?,
            priority: compile(&config.priority, "^[0-3]$")?,
            validity_period: compile(&config.validity_period, "^\\d+$")?,
            content: compile(&config.content, ".*")?,
        })
    }
}

/// What the caller explicitly set (HTTP parameters present; for SMPP derived from the PDU).
#[derive(Debug, Clone, Copy, Default)]
pub struct Requested {
    pub source_address: bool,
    pub priority: bool,
    pub validity_period: bool,
    pub schedule_delivery_time: bool,
    pub dlr_level: bool,
    pub dlr_method: bool,
    pub hex_content: bool,
    pub long_content: bool,
}

impl Requested {
    /// Jasmin's SMPP checks: a non-empty source_addr, priority_flag ≠ 0,
    /// registered_delivery ≠ 0.
    pub fn from_smpp(message: &Message) -> Self {
        Self {
            source_address: !message.source.addr.is_empty(),
            priority: message.priority != 0,
            dlr_level: message.registered_delivery & crate::model::RD_RECEIPT_MASK != 0,
            ..Self::default()
        }
    }
}

/// Check authorizations then value filters, in Jasmin's order.
pub fn check(user: &User, message: &Message, requested: &Requested) -> Result<(), Refusal> {
    let a = &user.authorizations;
    let http = message.origin == Origin::Http;
    let deny = |reason| {
        Err(Refusal::Authorization {
            username: user.username.to_string(),
            reason,
        })
    };
    if (http && !a.http_send) || (!http && !a.smpps_send) {
        return deny(AuthorizationKind::Send);
    }
    if requested.long_content && !a.http_long_content {
        return deny(AuthorizationKind::LongContent);
    }
    if requested.dlr_level && !a.dlr_level {
        return deny(AuthorizationKind::DlrLevel);
    }
    if requested.dlr_method && !a.http_dlr_method {
        return deny(AuthorizationKind::DlrMethod);
    }
    if requested.source_address && !a.src_addr {
        return deny(AuthorizationKind::SourceAddress);
    }
    if requested.priority && !a.priority {
        return deny(AuthorizationKind::Priority);
    }
    if requested.validity_period && !a.validity_period {
        return deny(AuthorizationKind::ValidityPeriod);
    }
    if requested.hex_content && !a.hex_content {
        return deny(AuthorizationKind::HexContent);
    }
    if requested.schedule_delivery_time && !a.schedule_delivery_time {
        return deny(AuthorizationKind::ScheduleDeliveryTime);
    }

    let f = &user.value_filters;
    let mismatch = |field| {
        Err(Refusal::ValueFilter {
            username: user.username.to_string(),
            field,
        })
    };
    if let Some(re) = &f.dst_addr
        && !re.is_match(message.destination.addr.as_bytes())
    {
        return mismatch(ValueFilterField::DestinationAddress);
    }
    if let Some(re) = &f.src_addr
        && (!http || requested.source_address)
        && !re.is_match(message.source.addr.as_bytes())
    {
        return mismatch(ValueFilterField::SourceAddress);
    }
    if let Some(re) = &f.priority
        && (!http || requested.priority)
        && !re.is_match(message.priority.to_string().as_bytes())
    {
        return mismatch(ValueFilterField::Priority);
    }
    if let Some(re) = &f.validity_period
        && http
        && requested.validity_period
        && !re.is_match(message.validity_period.as_bytes())
    {
        return mismatch(ValueFilterField::ValidityPeriod);
    }
    if let Some(re) = &f.content
        && !re.is_match(&message.content)
    {
        return mismatch(ValueFilterField::Content);
    }
    Ok(())
}

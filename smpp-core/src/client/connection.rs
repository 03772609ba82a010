//! One connected, bound link: the uplink's session loop.

use std::{
    collections::VecDeque,
    panic::AssertUnwindSafe,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use futures_util::FutureExt;
use rusmpp::{
    Command, CommandStatus, Pdu,
    pdus::{BindReceiver, BindTransceiver, BindTransmitter, DataSmResp, DeliverSmResp},
    types::COctetString,
    values::{InterfaceVersion, Npi, Ton},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    task::JoinSet,
    time::MissedTickBehavior,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    UplinkConfig,
    handler::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, SubmitSource, UplinkHandler,
        UplinkStats,
    },
};
use crate::{
    bind::BindKind,
    frame::{self, Framer, ids},
    io::{Outbox, WRITE_QUEUE, give_up_at, write_loop},
    status,
    throttle::TokenBucket,
    window::Window,
};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {address} failed: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    #[error("bind refused with {0:?}")]
    BindRefused(CommandStatus),
    #[error("no bind response in time")]
    BindTimeout,
    #[error("connection closed during bind")]
    Closed,
    #[error("bad bind response: {0}")]
    Protocol(String),
    #[error("bind field too long: {0}")]
    Field(&'static str),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

pub(crate) struct Link {
    reader: Reader,
    writer: Writer,
    buf: BytesMut,
}

pub(crate) enum SessionEnd {
    /// Shutdown or end of source: do not reconnect.
    Stopped,
    Lost(String),
}

/// Connect and bind; on success the link is ready for `run`.
pub(crate) async fn connect(config: &UplinkConfig) -> Result<Link, ConnectError> {
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&config.address))
        .await
        .map_err(|_| ConnectError::ConnectTimeout(config.address.clone()))?
        .map_err(|source| ConnectError::Connect {
            address: config.address.clone(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer): (Reader, Writer) = match &config.tls {
        None => {
            let (reader, writer) = stream.into_split();
            (Box::new(reader), Box::new(writer))
        }
        Some(tls) => {
            let stream = tokio::time::timeout(
                config.connect_timeout,
                tls.connector.connect(tls.server_name.clone(), stream),
            )
            .await
            .map_err(|_| ConnectError::ConnectTimeout(config.address.clone()))?
            .map_err(ConnectError::Tls)?;
            let (reader, writer) = tokio::io::split(stream);
            (Box::new(reader), Box::new(writer))
        }
    };

    let mut out = BytesMut::new();
    frame::encode_command(
        &Command::new(CommandStatus::EsmeRok, 1, bind_pdu(config)?),
        &mut out,
    );
    let deadline = tokio::time::Instant::now() + config.bind_timeout;
    // An SMSC that does not read must not hold the connect for longer than the bind.
    tokio::time::timeout_at(deadline, writer.write_all(&out))
        .await
        .map_err(|_| ConnectError::BindTimeout)?
        .map_err(|_| ConnectError::Closed)?;

    let framer = Framer::new(config.max_command_length);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(frame) = framer
            .next_frame(&mut buf)
            .map_err(|e| ConnectError::Protocol(e.to_string()))?
        {
            let header = frame.header;
            if header.command_id == config.bind.command_id() | 0x8000_0000
                || header.command_id == ids::GENERIC_NACK
            {
                if header.status() != CommandStatus::EsmeRok {
                    return Err(ConnectError::BindRefused(header.status()));
                }
                if !buf.is_empty() {
                    // PDUs that came with the bind_resp (an SMSC with receipts queued
                    // sends them at once) are read again first: `run` parses what it
                    // reads, so bytes left in the buffer would wait for the next read.
                    let early = std::io::Cursor::new(buf.split().freeze());
                    reader = Box::new(early.chain(reader));
                }
                return Ok(Link {
                    reader,
                    writer,
                    buf,
                });
            }
            debug!(
                command_id = header.command_id,
                "PDU before bind response ignored"
            );
        }
        match tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)).await {
            Err(_) => return Err(ConnectError::BindTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(ConnectError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

pub(crate) fn bind_pdu(config: &UplinkConfig) -> Result<Pdu, ConnectError> {
    let system_id = COctetString::from_string(config.system_id.clone())
        .map_err(|_| ConnectError::Field("system_id (max 15)"))?;
    let password = COctetString::from_string(config.password.clone())
        .map_err(|_| ConnectError::Field("password (max 8)"))?;
    let system_type = COctetString::from_string(config.system_type.clone())
        .map_err(|_| ConnectError::Field("system_type (max 12)"))?;
    let address_range = COctetString::from_string(config.address_range.clone())
        .map_err(|_| ConnectError::Field("address_range (max 40)"))?;
    let ton = Ton::from(config.addr_ton);
    let npi = Npi::from(config.addr_npi);
    let version = InterfaceVersion::Smpp3_4;
    Ok(match config.bind {
        BindKind::Transmitter => BindTransmitter::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )
        .into(),
        BindKind::Receiver => BindReceiver::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )
        .into(),
        BindKind::Transceiver => BindTransceiver::new(
            system_id,
            password,
            system_type,
            version,
            ton,
            npi,
            address_range,
        )
        .into(),
    })
}

/// Send and receive until the link drops or we stop. Requests in flight when the link
/// drops go back to `retry` (so a message may reach the operator twice; never zero times).
pub(crate) async fn run<S: SubmitSource, H: UplinkHandler>(
    link: Link,
    config: &UplinkConfig,
    source: &mut S,
    shared_handler: &Arc<H>,
    stats: &UplinkStats,
    retry: &mut VecDeque<SubmitRequest>,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let handler: &H = shared_handler;
    let Link {
        mut reader,
        writer,
        mut buf,
    } = link;
    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
    let mut writer_task = tokio::spawn(write_loop(writer, write_rx, config.write_timeout));
    let mut outbox = Outbox::new(write_tx);
    let framer = Framer::new(config.max_command_length);

    let mut window: Window<SubmitRequest> = Window::new(config.window, config.response_timeout);
    // deliver_sm handlers run as tasks of their own: receipts are as many as submits,
    // and handled in this task they would hold the link to one core.
    let mut inbound: JoinSet<(u32, u32, CommandStatus)> = JoinSet::new();
    let max_inbound = config.max_inbound.unwrap_or(config.window).max(1);
    let mut bucket = config.throughput.map(TokenBucket::new);
    let mut paused_until: Option<Instant> = None;
    let mut throttle_pause = config.throttle_pause;
    let mut sequence: u32 = 1;
    let mut last_received = Instant::now();
    let mut last_sent = Instant::now();
    let mut stopping: Option<Instant> = None;
    let mut unbind_sent = false;
    let mut source_done = false;
    let can_submit = config.bind.can_submit();
    let mut tick = tokio::time::interval(tick_period(config));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let end = 'session: loop {
        let now = Instant::now();
        // Wait for the throttling pause and the throughput cap before sending more.
        let gate = send_gate(now, paused_until, bucket.as_mut());
        let open = can_submit && stopping.is_none() && window.has_room() && gate.is_none();
        if open {
            while window.has_room() && send_gate(now, paused_until, bucket.as_mut()).is_none() {
                let Some(request) = retry.pop_front() else {
                    break;
                };
                send_submit(
                    request,
                    &mut sequence,
                    &mut window,
                    &mut bucket,
                    outbox.buf(),
                    stats,
                );
                last_sent = now;
            }
        }
        let take_new = open && retry.is_empty() && !source_done && window.has_room();

        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if stopping.is_none() => {
                stopping = Some(Instant::now() + config.shutdown_timeout);
            }
            _ = outbox.closed() => break 'session SessionEnd::Lost("write failed or timed out".into()),
            Some(answered) = inbound.join_next(), if !inbound.is_empty() => {
                let mut answered = Some(answered);
                while let Some(joined) = answered {
                    // A handler task is only cancelled when this set is dropped.
                    if let Ok((seq, response_id, status)) = joined {
                        frame::encode_pdu(&inbound_response(response_id), u32::from(status), seq, outbox.buf());
                    }
                    answered = inbound.try_join_next();
                }
            }
            // With max_inbound handlers running, the socket is not read: the SMSC's
            // window and TCP push back instead of futures piling up here.
            read = reader.read_buf(&mut buf), if inbound.len() < max_inbound => {
                match read {
                    Ok(0) => break 'session SessionEnd::Lost("closed by the SMSC".into()),
                    Err(error) => break 'session SessionEnd::Lost(format!("read failed: {error}")),
                    Ok(_) => {}
                }
                last_received = Instant::now();
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(64 * 1024);
                }
            }
            next = source.next_submit(), if take_new => {
                match next {
                    Some(request) => {
                        send_submit(request, &mut sequence, &mut window, &mut bucket, outbox.buf(), stats);
                        last_sent = Instant::now();
                        // Take whatever else is ready without another turn of the loop.
                        let mut ready = Ready { sequence: &mut sequence, window: &mut window, bucket: &mut bucket, paused_until, stats };
                        let (taken, ended) = ready.take(source, outbox.buf());
                        source_done = ended;
                        // A trickle (a journal group commit wakes its submitters one
                        // after another): let the tasks already woken queue theirs
                        // first, so that one write carries the burst, not one PDU each.
                        if 1 + taken < COALESCE_BELOW && !ended && ready.window.has_room() {
                            tokio::task::yield_now().await;
                            source_done = ready.take(source, outbox.buf()).1;
                        }
                    }
                    None => {
                        source_done = true;
                        stopping = Some(Instant::now() + config.shutdown_timeout);
                    }
                }
            }
            _ = sleep_until(gate), if gate.is_some() && can_submit && stopping.is_none() => {}
            _ = tick.tick() => {
                let now = Instant::now();
                for mut request in window.expire(now) {
                    stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                    request.attempts += 1;
                    if request.attempts >= config.max_attempts {
                        warn!(tag = request.tag, "no submit_sm_resp after {} attempts", request.attempts);
                        handler.on_submit_result(SubmitResult {
                            tag: request.tag,
                            outcome: SubmitOutcome::TimedOut,
                            latency: config.response_timeout,
                            attempts: request.attempts,
                            request: Some(request),
                        });
                    } else {
                        retry.push_back(request);
                    }
                }
                if inbound.len() >= max_inbound {
                    // Not reading by choice: silence from the SMSC says nothing now.
                    last_received = now;
                }
                if now.duration_since(last_received) > config.dead_after {
                    break 'session SessionEnd::Lost("nothing received within dead_after".into());
                }
                if now.duration_since(last_sent) >= config.enquire_link_interval {
                    sequence = next_sequence(sequence);
                    frame::encode_header_only(ids::ENQUIRE_LINK, 0, sequence, outbox.buf());
                    last_sent = now;
                }
                if stopping.is_some_and(|deadline| now > deadline) {
                    break 'session SessionEnd::Stopped;
                }
            }
        }

        // Frames already read: also after a handler finished, when the buffer may hold
        // more than the cap let through.
        let now = Instant::now();
        while inbound.len() < max_inbound {
            let frame = match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    frame::encode_header_only(
                        ids::GENERIC_NACK,
                        u32::from(CommandStatus::EsmeRinvcmdlen),
                        0,
                        outbox.buf(),
                    );
                    let _ = outbox
                        .flush_or(flush_limit(config, stopping, shutdown))
                        .await;
                    break 'session SessionEnd::Lost(error.to_string());
                }
            };
            let header = frame.header;
            match header.command_id {
                ids::SUBMIT_SM_RESP | ids::GENERIC_NACK => {
                    let Some((sent_at, request)) = window.complete(header.sequence_number) else {
                        debug!(
                            seq = header.sequence_number,
                            "response to no pending submit_sm"
                        );
                        continue;
                    };
                    let latency = now.saturating_duration_since(sent_at);
                    let status = header.status();
                    match status {
                        CommandStatus::EsmeRok => {
                            let message_id =
                                match frame.decode().ok().and_then(|c| c.into_parts().pdu) {
                                    Some(Pdu::SubmitSmResp(resp)) => {
                                        resp.message_id().as_str().to_owned()
                                    }
                                    _ => String::new(),
                                };
                            throttle_pause = config.throttle_pause;
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            finish(
                                handler,
                                stats,
                                request,
                                SubmitOutcome::Accepted { message_id },
                                latency,
                            );
                        }
                        CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful => {
                            // Not a failure: slow down and send it again, ahead of new traffic.
                            stats.throttled.fetch_add(1, Ordering::Relaxed);
                            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                            retry.push_front(request);
                            paused_until = Some(now + throttle_pause);
                            throttle_pause = (throttle_pause * 2).min(config.max_throttle_pause);
                        }
                        status => {
                            stats.rejected.fetch_add(1, Ordering::Relaxed);
                            finish(
                                handler,
                                stats,
                                request,
                                SubmitOutcome::Rejected(status),
                                latency,
                            );
                        }
                    }
                }
                ids::DELIVER_SM | ids::DATA_SM => {
                    let seq = header.sequence_number;
                    let response_id = header.command_id | 0x8000_0000;
                    let inbound_pdu = match frame.decode() {
                        Ok(command) => match command.into_parts().pdu {
                            Some(Pdu::DeliverSm(p)) => Inbound::DeliverSm(Box::new(p)),
                            Some(Pdu::DataSm(p)) => Inbound::DataSm(Box::new(p)),
                            _ => {
                                frame::encode_header_only(
                                    response_id,
                                    u32::from(CommandStatus::EsmeRinvcmdlen),
                                    seq,
                                    outbox.buf(),
                                );
                                continue;
                            }
                        },
                        Err(error) => {
                            warn!(?error, "malformed deliver_sm/data_sm");
                            frame::encode_header_only(
                                response_id,
                                u32::from(status::for_body_error(&error)),
                                seq,
                                outbox.buf(),
                            );
                            continue;
                        }
                    };
                    stats.inbound.fetch_add(1, Ordering::Relaxed);
                    let handler = shared_handler.clone();
                    inbound.spawn(async move {
                        // A handler that panics answers ESME_RSYSERR, as one that fails.
                        let status = AssertUnwindSafe(handler.on_inbound(inbound_pdu))
                            .catch_unwind()
                            .await
                            .unwrap_or(CommandStatus::EsmeRsyserr);
                        (seq, response_id, status)
                    });
                }
                ids::ENQUIRE_LINK => {
                    frame::encode_header_only(
                        ids::ENQUIRE_LINK_RESP,
                        0,
                        header.sequence_number,
                        outbox.buf(),
                    );
                }
                ids::UNBIND => {
                    frame::encode_header_only(
                        ids::UNBIND_RESP,
                        0,
                        header.sequence_number,
                        outbox.buf(),
                    );
                    let _ = outbox
                        .flush_or(flush_limit(config, stopping, shutdown))
                        .await;
                    break 'session SessionEnd::Lost("unbound by the SMSC".into());
                }
                ids::UNBIND_RESP if unbind_sent => break 'session SessionEnd::Stopped,
                ids::ENQUIRE_LINK_RESP | ids::UNBIND_RESP => {}
                id if frame::response_id(id).is_some() => {
                    frame::encode_header_only(
                        ids::GENERIC_NACK,
                        u32::from(CommandStatus::EsmeRinvcmdid),
                        header.sequence_number,
                        outbox.buf(),
                    );
                }
                id => debug!(command_id = id, "ignored response"),
            }
        }

        if stopping.is_some() && !unbind_sent && window.is_empty() && inbound.is_empty() {
            sequence = next_sequence(sequence);
            frame::encode_header_only(ids::UNBIND, 0, sequence, outbox.buf());
            unbind_sent = true;
        }
        // An SMSC that does not read blocks this flush; the limit keeps the stop deadline.
        if outbox
            .flush_or(flush_limit(config, stopping, shutdown))
            .await
            .is_err()
        {
            break 'session SessionEnd::Lost("write failed or blocked".into());
        }
    };

    // Fate unknown for what is still in flight: send it again on the next link.
    let pending = window.drain();
    stats.in_flight.fetch_sub(pending.len(), Ordering::Relaxed);
    for mut request in pending.into_iter().rev() {
        request.attempts += 1;
        retry.push_front(request);
    }
    if config.hand_back_on_loss && matches!(end, SessionEnd::Lost(_)) {
        // The owner sends them elsewhere now rather than here after a reconnect: those
        // sent and unanswered (the operator may have them) come back as TimedOut, those
        // never taken (throttled) as NotSent.
        for request in retry.drain(..) {
            let outcome = if request.attempts > 0 {
                SubmitOutcome::TimedOut
            } else {
                SubmitOutcome::NotSent
            };
            handler.on_submit_result(SubmitResult {
                tag: request.tag,
                outcome,
                latency: Duration::ZERO,
                attempts: request.attempts,
                request: Some(request),
            });
        }
    }
    drop(outbox);
    // The writer may still be blocked on an SMSC that does not read.
    if tokio::time::timeout(Duration::from_secs(2), &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    end
}

/// What a flush may wait for room in the write queue: the write timeout, the stop
/// deadline once stopping, and the shutdown timeout after a shutdown.
fn flush_limit<'a>(
    config: &UplinkConfig,
    stopping: Option<Instant>,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = ()> + 'a {
    let now = tokio::time::Instant::now();
    let mut deadline = now
        .checked_add(config.write_timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
    if let Some(stop) = stopping {
        deadline = deadline.min(tokio::time::Instant::from_std(stop));
    }
    let shutdown = stopping
        .is_none()
        .then_some((shutdown, config.shutdown_timeout));
    give_up_at(deadline, shutdown)
}

fn tick_period(config: &UplinkConfig) -> Duration {
    let shortest = config
        .response_timeout
        .min(config.enquire_link_interval)
        .min(config.dead_after);
    (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(500))
}

fn next_sequence(sequence: u32) -> u32 {
    // Sequence numbers run 1..=0x7FFFFFFF.
    if sequence >= 0x7FFF_FFFF {
        1
    } else {
        sequence + 1
    }
}

/// When sending must wait (throttling pause or throughput cap), until when.
fn send_gate(
    now: Instant,
    paused_until: Option<Instant>,
    bucket: Option<&mut TokenBucket>,
) -> Option<Instant> {
    if let Some(until) = paused_until
        && until > now
    {
        return Some(until);
    }
    let wait = bucket.map_or(Duration::ZERO, |b| b.wait_time(now));
    (!wait.is_zero()).then(|| now + wait)
}

async fn sleep_until(gate: Option<Instant>) {
    if let Some(at) = gate {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// With fewer submits than this ready at once, the link yields once to let more come.
const COALESCE_BELOW: usize = 8;

/// What sending the submits already queued needs.
struct Ready<'a> {
    sequence: &'a mut u32,
    window: &'a mut Window<SubmitRequest>,
    bucket: &'a mut Option<TokenBucket>,
    paused_until: Option<Instant>,
    stats: &'a UplinkStats,
}

impl Ready<'_> {
    /// Sends what the source has ready, as far as the window and the throughput cap
    /// allow: how many, and whether the source has ended.
    fn take<S: SubmitSource>(&mut self, source: &mut S, out: &mut BytesMut) -> (usize, bool) {
        let mut taken = 0;
        while self.window.has_room()
            && send_gate(Instant::now(), self.paused_until, self.bucket.as_mut()).is_none()
        {
            match source.next_submit().now_or_never() {
                Some(Some(request)) => {
                    send_submit(
                        request,
                        self.sequence,
                        self.window,
                        self.bucket,
                        out,
                        self.stats,
                    );
                    taken += 1;
                }
                Some(None) => return (taken, true),
                None => break,
            }
        }
        (taken, false)
    }
}

fn send_submit(
    request: SubmitRequest,
    sequence: &mut u32,
    window: &mut Window<SubmitRequest>,
    bucket: &mut Option<TokenBucket>,
    out: &mut BytesMut,
    stats: &UplinkStats,
) {
    let now = Instant::now();
    if let Some(bucket) = bucket.as_mut() {
        bucket.try_take(now);
    }
    *sequence = next_sequence(*sequence);
    frame::encode_body(ids::SUBMIT_SM, 0, *sequence, &*request.pdu, out);
    stats.submitted.fetch_add(1, Ordering::Relaxed);
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    window.insert(*sequence, now, request);
}

fn finish<H: UplinkHandler>(
    handler: &H,
    stats: &UplinkStats,
    request: SubmitRequest,
    outcome: SubmitOutcome,
    latency: Duration,
) {
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    handler.on_submit_result(SubmitResult {
        tag: request.tag,
        outcome,
        latency,
        attempts: request.attempts + 1,
        request: None,
    });
}

fn inbound_response(response_id: u32) -> Pdu {
    if response_id == ids::DATA_SM_RESP {
        Pdu::DataSmResp(DataSmResp::default())
    } else {
        Pdu::DeliverSmResp(DeliverSmResp::default())
    }
}

//! One ESME connection, from accept to close: OPEN → BOUND_{TX,RX,TRX} → UNBOUND.
//!
//! A single task reads, decodes, runs the handler futures (so responses may complete
//! out of order), and sends deliver_sm from the router within a window; a second task
//! only writes bytes (see `io`).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use futures_util::{StreamExt, stream::FuturesUnordered};
use rusmpp::{Command, CommandStatus, Pdu, types::COctetString};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    sync::mpsc,
    time::MissedTickBehavior,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use super::{
    ServerConfig,
    guard::{AccessGuard, IpConnection},
    handler::{
        Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, SessionInfo,
    },
    registry::{BoundGuard, ConnectionGuard, Outbound, OutboundResult, SessionRegistry},
};
use crate::{
    bind::BindKind,
    frame::{self, Frame, Framer, ids},
    io::{Outbox, WRITE_QUEUE, give_up_at, write_loop},
    status,
    throttle::TokenBucket,
    window::Window,
};

/// What every session of a listener shares.
pub(crate) struct Shared<A, H> {
    pub config: ServerConfig,
    pub auth: Arc<A>,
    pub handler: Arc<H>,
    pub registry: Arc<SessionRegistry>,
    pub guard: Arc<AccessGuard>,
}

struct Bound {
    info: Arc<SessionInfo>,
    _guard: BoundGuard,
    bucket: Option<TokenBucket>,
}

/// Why and how the session is ending.
struct Closing {
    deadline: Instant,
    /// The ESME asked to unbind: answer it once in-flight requests are answered.
    unbind_resp_to: Option<u32>,
    /// We are unbinding (shutdown or inactivity): has our unbind gone out?
    unbind_sent: bool,
}

const READ_CHUNK: usize = 64 * 1024;
/// An idle session's read buffer: it grows to [`READ_CHUNK`] once a read fills it, so
/// thousands of quiet binds do not each hold 64 KiB.
const IDLE_READ_CHUNK: usize = 2 * 1024;

pub(crate) async fn run<R, W, A, H>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    shared: Arc<Shared<A, H>>,
    shutdown: CancellationToken,
    slots: (ConnectionGuard, IpConnection),
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    A: Authenticator,
    H: RequestHandler,
{
    let session_id = shared.registry.next_session_id();
    // Instrumented rather than entered: the span must follow the task across awaits.
    let span = tracing::info_span!(parent: None, "smpp_session", id = session_id, %peer);
    session(reader, writer, peer, session_id, shared, shutdown, slots)
        .instrument(span)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn session<R, W, A, H>(
    mut reader: R,
    writer: W,
    peer: SocketAddr,
    session_id: u64,
    shared: Arc<Shared<A, H>>,
    shutdown: CancellationToken,
    _slots: (ConnectionGuard, IpConnection),
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    A: Authenticator,
    H: RequestHandler,
{
    let config = &shared.config;
    let handler = &*shared.handler;
    let framer = Framer::new(config.max_command_length);

    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
    let mut writer_task = tokio::spawn(write_loop(writer, write_rx, config.write_timeout));
    let mut outbox = Outbox::new(write_tx);

    let (outbound_tx, mut outbound_rx) = mpsc::channel::<Outbound>(config.outbound_queue.max(1));
    let mut sent: Window<Outbound> = Window::new(config.outbound_window, config.response_timeout);
    let mut inflight = FuturesUnordered::new();
    let mut buf = BytesMut::with_capacity(IDLE_READ_CHUNK);
    let mut read_chunk = IDLE_READ_CHUNK;
    let mut bound: Option<Bound> = None;
    let mut closing: Option<Closing> = None;
    let mut next_sequence: u32 = 0;
    let opened = Instant::now();
    let mut last_activity = opened;
    let mut partial_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(tick_period(config));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The gateway's way to end this session once bound (its user was disabled).
    let unbind_request = CancellationToken::new();

    'session: loop {
        let can_deliver = bound.as_ref().is_some_and(|b| b.info.kind.can_receive())
            && closing.is_none()
            && sent.has_room();
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if closing.is_none() => {
                debug!("server shutting down: unbinding");
                if bound.is_none() {
                    break 'session;
                }
                closing = Some(Closing {
                    deadline: Instant::now() + config.shutdown_timeout,
                    unbind_resp_to: None,
                    unbind_sent: false,
                });
            }
            _ = unbind_request.cancelled(), if closing.is_none() && bound.is_some() => {
                info!("the gateway ends this session (user disabled or removed): unbinding");
                closing = Some(Closing {
                    deadline: Instant::now() + config.shutdown_timeout,
                    unbind_resp_to: None,
                    unbind_sent: false,
                });
            }
            _ = outbox.closed() => {
                debug!("writer gone (write failed or timed out): closing");
                break 'session;
            }
            Some((sequence, response_id, response)) = inflight.next(), if !inflight.is_empty() => {
                encode_response(outbox.buf(), sequence, response_id, response);
                // Collect every other response that is already done into the same write.
                while let Some(Some((sequence, response_id, response))) =
                    futures_util::FutureExt::now_or_never(inflight.next())
                {
                    encode_response(outbox.buf(), sequence, response_id, response);
                }
            }
            Some(outbound) = outbound_rx.recv(), if can_deliver => {
                next_sequence = next_sequence.wrapping_add(1).max(1);
                frame::encode_pdu(&outbound.pdu, 0, next_sequence, outbox.buf());
                sent.insert(next_sequence, Instant::now(), outbound);
                last_activity = Instant::now();
            }
            read = reader.read_buf(&mut buf) => {
                match read {
                    Ok(0) => { debug!("peer closed the connection"); break 'session; }
                    Err(error) => { debug!(%error, "read failed"); break 'session; }
                    // A read that filled the buffer: this peer is busy, read in large chunks.
                    Ok(_) if buf.len() == buf.capacity() => read_chunk = READ_CHUNK,
                    Ok(_) => {}
                }
                let now = Instant::now();
                last_activity = now;
                let mut completed_any = false;
                loop {
                    let frame = match framer.next_frame(&mut buf) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(error) => {
                            warn!(%error, "closing session");
                            frame::encode_header_only(ids::GENERIC_NACK, u32::from(CommandStatus::EsmeRinvcmdlen), 0, outbox.buf());
                            let _ = outbox.flush_or(flush_limit(config, opened, bound.is_some(), closing.as_ref(), &shutdown)).await;
                            break 'session;
                        }
                    };
                    completed_any = true;
                    let header = frame.header;
                    if header.is_response() {
                        match header.command_id {
                            ids::UNBIND_RESP if closing.as_ref().is_some_and(|c| c.unbind_sent) => {
                                break 'session;
                            }
                            ids::DELIVER_SM_RESP | ids::DATA_SM_RESP | ids::GENERIC_NACK => {
                                if let Some((_, outbound)) = sent.complete(header.sequence_number) {
                                    outbound.finish(OutboundResult::Answered(header.status()));
                                }
                            }
                            _ => debug!(command_id = header.command_id, "ignored response"),
                        }
                        continue;
                    }
                    let sequence = header.sequence_number;
                    let Some(response_id) = frame::response_id(header.command_id) else {
                        debug!(command_id = header.command_id, "ignored PDU that takes no response");
                        continue;
                    };
                    if !ids::is_known_request(header.command_id) {
                        nack(outbox.buf(), CommandStatus::EsmeRinvcmdid, sequence);
                        continue;
                    }
                    match header.command_id {
                        ids::ENQUIRE_LINK => reply_status(outbox.buf(), response_id, CommandStatus::EsmeRok, sequence),
                        ids::UNBIND => {
                            if bound.is_none() {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRinvbndsts, sequence);
                            } else {
                                debug!("ESME unbinds");
                                closing = Some(Closing {
                                    deadline: now + config.shutdown_timeout,
                                    unbind_resp_to: Some(sequence),
                                    unbind_sent: false,
                                });
                            }
                        }
                        ids::BIND_TRANSMITTER | ids::BIND_RECEIVER | ids::BIND_TRANSCEIVER => {
                            if bound.is_some() || closing.is_some() {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRalybnd, sequence);
                                continue;
                            }
                            match bind(frame, peer, session_id, &shared, &outbound_tx, &unbind_request).await {
                                Ok((bind_resp, new_bound)) => {
                                    frame::encode_command(&Command::new(CommandStatus::EsmeRok, sequence, bind_resp), outbox.buf());
                                    info!(system_id = %new_bound.info.system_id, kind = new_bound.info.kind.as_str(), "bound");
                                    handler.on_bound(&new_bound.info);
                                    bound = Some(new_bound);
                                }
                                Err((status, delay)) => {
                                    info!(?status, "bind refused");
                                    tokio::time::sleep(delay).await;
                                    reply_status(outbox.buf(), response_id, status, sequence);
                                    let _ = outbox.flush_or(flush_limit(config, opened, false, closing.as_ref(), &shutdown)).await;
                                    break 'session;
                                }
                            }
                        }
                        _ => {
                            let Some(session) = bound.as_mut() else {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRinvbndsts, sequence);
                                continue;
                            };
                            if closing.is_some() {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRinvbndsts, sequence);
                                continue;
                            }
                            let request = match decode_request(frame, session.info.kind) {
                                Ok(request) => request,
                                Err(status) => {
                                    reply_status(outbox.buf(), response_id, status, sequence);
                                    continue;
                                }
                            };
                            if inflight.len() >= config.window {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRthrottled, sequence);
                                continue;
                            }
                            if is_submission(&request)
                                && let Some(bucket) = session.bucket.as_mut()
                                && !bucket.try_take(now)
                            {
                                reply_status(outbox.buf(), response_id, CommandStatus::EsmeRthrottled, sequence);
                                continue;
                            }
                            let info = session.info.clone();
                            inflight.push(async move {
                                let response = handler.handle(&info, request).await;
                                (sequence, response_id, response)
                            });
                        }
                    }
                }
                partial_since = if buf.is_empty() {
                    None
                } else if completed_any {
                    Some(now)
                } else {
                    partial_since.or(Some(now))
                };
                if buf.capacity() - buf.len() < read_chunk / 16 {
                    buf.reserve(read_chunk);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for outbound in sent.expire(now) {
                    warn!("no response to deliver_sm within the response timeout");
                    outbound.finish(OutboundResult::Timeout);
                }
                if bound.is_none() && now.duration_since(opened) > config.bind_timeout {
                    info!("no bind within the bind timeout: closing");
                    break 'session;
                }
                if partial_since.is_some_and(|since| now.duration_since(since) > config.pdu_read_timeout) {
                    warn!("incomplete PDU older than the PDU read timeout: closing");
                    nack(outbox.buf(), CommandStatus::EsmeRinvcmdlen, 0);
                    let _ = outbox.flush_or(flush_limit(config, opened, bound.is_some(), closing.as_ref(), &shutdown)).await;
                    break 'session;
                }
                if bound.is_some() && closing.is_none() && now.duration_since(last_activity) > config.inactivity_timeout {
                    info!("inactivity timeout: unbinding");
                    closing = Some(Closing { deadline: now + config.shutdown_timeout, unbind_resp_to: None, unbind_sent: false });
                }
                if closing.as_ref().is_some_and(|c| now > c.deadline) {
                    info!("unbind did not complete in time: closing");
                    break 'session;
                }
            }
        }

        if let Some(close) = closing.as_mut()
            && inflight.is_empty()
        {
            if let Some(sequence) = close.unbind_resp_to {
                reply_status(
                    outbox.buf(),
                    ids::UNBIND_RESP,
                    CommandStatus::EsmeRok,
                    sequence,
                );
                let _ = outbox
                    .flush_or(flush_limit(config, opened, true, Some(&*close), &shutdown))
                    .await;
                break 'session;
            }
            if !close.unbind_sent {
                next_sequence = next_sequence.wrapping_add(1).max(1);
                frame::encode_header_only(ids::UNBIND, 0, next_sequence, outbox.buf());
                close.unbind_sent = true;
            }
        }
        // A peer that does not read blocks this flush; the limit keeps the bind, unbind
        // and shutdown deadlines (which the tick enforces) in force meanwhile.
        let limit = flush_limit(config, opened, bound.is_some(), closing.as_ref(), &shutdown);
        if outbox.flush_or(limit).await.is_err() {
            debug!("write blocked past a deadline, or writer gone: closing");
            break 'session;
        }
    }

    // Whatever the router queued here and the ESME never answered goes back to it.
    outbound_rx.close();
    for outbound in sent.drain() {
        outbound.finish(OutboundResult::Closed);
    }
    while let Ok(outbound) = outbound_rx.try_recv() {
        outbound.finish(OutboundResult::Closed);
    }
    if let Some(session) = bound.take() {
        info!(system_id = %session.info.system_id, "session closed");
        handler.on_unbound(&session.info);
    }
    drop(outbox);
    // The writer may still be blocked on a peer that does not read: the socket must not
    // outlive the session by more than this.
    if tokio::time::timeout(Duration::from_secs(2), &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
}

/// What a flush may wait for room in the write queue: never past the write timeout, the
/// bind deadline (unbound) or the unbind deadline (closing); after a shutdown, not past
/// the shutdown timeout (bound) or not at all (unbound).
fn flush_limit<'a>(
    config: &ServerConfig,
    opened: Instant,
    bound: bool,
    closing: Option<&Closing>,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = ()> + 'a {
    let now = Instant::now();
    let mut deadline = later(now, config.write_timeout);
    if !bound {
        deadline = deadline.min(later(opened, config.bind_timeout));
    }
    if let Some(close) = closing {
        deadline = deadline.min(close.deadline);
    }
    let grace = if bound {
        config.shutdown_timeout
    } else {
        Duration::ZERO
    };
    // A closing session already carries its own deadline.
    let shutdown = closing.is_none().then_some((shutdown, grace));
    give_up_at(tokio::time::Instant::from_std(deadline), shutdown)
}

/// `at + after`, saturating far in the future instead of overflowing.
fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 3600))
}

fn tick_period(config: &ServerConfig) -> Duration {
    let shortest = config
        .bind_timeout
        .min(config.response_timeout)
        .min(config.pdu_read_timeout)
        .min(config.inactivity_timeout);
    (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(500))
}

/// First and longest pause of a bind waiting for the binds of its client being verified.
const IN_FLIGHT_FIRST_PAUSE: Duration = Duration::from_millis(2);
const IN_FLIGHT_MAX_PAUSE: Duration = Duration::from_millis(50);

/// A bind begun with the guard: unless it succeeded, it settles as a failure when it
/// ends, however it ends (refused, timed out, or the connection dropped mid-way).
struct BindAttempt<'a> {
    guard: &'a AccessGuard,
    peer: SocketAddr,
    system_id: &'a str,
    succeeded: bool,
}

impl Drop for BindAttempt<'_> {
    fn drop(&mut self) {
        if !self.succeeded {
            self.guard.settled_failure(self.peer.ip(), self.system_id);
        }
    }
}

async fn bind<A: Authenticator, H>(
    frame: Frame,
    peer: SocketAddr,
    session_id: u64,
    shared: &Shared<A, H>,
    outbound_tx: &mpsc::Sender<Outbound>,
    unbind_request: &CancellationToken,
) -> Result<(Pdu, Bound), (CommandStatus, Duration)> {
    let kind = BindKind::from_command_id(frame.header.command_id)
        .ok_or((CommandStatus::EsmeRinvcmdid, Duration::ZERO))?;
    let command = frame
        .decode()
        .map_err(|e| (status::for_body_error(&e), Duration::ZERO))?;
    let (system_id, password, system_type) = match command.pdu() {
        Some(Pdu::BindTransmitter(b)) => (&b.system_id, &b.password, &b.system_type),
        Some(Pdu::BindReceiver(b)) => (&b.system_id, &b.password, &b.system_type),
        Some(Pdu::BindTransceiver(b)) => (&b.system_id, &b.password, &b.system_type),
        _ => return Err((CommandStatus::EsmeRinvcmdlen, Duration::ZERO)),
    };
    let request = BindRequest {
        kind,
        system_id: system_id.as_str().to_owned(),
        password: password.as_str().to_owned(),
        system_type: system_type.as_str().to_owned(),
        peer,
    };
    let config = &shared.config;
    let guard = &shared.guard;
    // Counted as a failure before the authenticator (and its password hashing) runs, so
    // a burst of parallel binds cannot all be verified before the lockout starts. A bind
    // held back only by binds still being verified (a client opening many at once)
    // waits for them instead of being refused.
    let waiting_since = Instant::now();
    let mut pause = IN_FLIGHT_FIRST_PAUSE;
    let failure_delay = loop {
        if let Some(delay) = guard.begin(peer.ip(), &request.system_id) {
            break delay;
        }
        if guard.held_back_by_binds_in_flight(peer.ip(), &request.system_id)
            && waiting_since.elapsed() + pause < config.bind_timeout
        {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(IN_FLIGHT_MAX_PAUSE);
            continue;
        }
        // The system_id is the peer's choice: escaped, and at debug so that a flood of
        // locked-out attempts cannot flood the log.
        debug!(system_id = ?request.system_id, %peer, "bind refused: locked out after repeated failures");
        return Err((CommandStatus::EsmeRbindfail, config.guard.failure_delay));
    };
    let mut attempt = BindAttempt {
        guard,
        peer,
        system_id: &request.system_id,
        succeeded: false,
    };
    let authenticated =
        tokio::time::timeout(config.bind_timeout, shared.auth.authenticate(&request))
            .await
            .unwrap_or(Err(CommandStatus::EsmeRbindfail));
    let grant: BindGrant = match authenticated {
        Ok(grant) => {
            guard.succeeded(peer.ip(), &request.system_id);
            attempt.succeeded = true;
            grant
        }
        Err(status) => return Err((status, failure_delay)),
    };
    drop(attempt);
    let info = Arc::new(SessionInfo {
        id: session_id,
        system_id: grant.system_id.clone(),
        kind,
        peer,
    });
    let max = grant
        .max_sessions
        .unwrap_or(usize::MAX)
        .min(config.max_sessions_per_system_id);
    let guard = shared
        .registry
        .register(
            info.clone(),
            outbound_tx.clone(),
            max,
            unbind_request.clone(),
        )
        .ok_or((CommandStatus::EsmeRbindfail, Duration::ZERO))?;
    let bucket = grant
        .submit_rate
        .or(config.submit_rate)
        .map(TokenBucket::new);
    // Like Jasmin, answer with the system_id the ESME bound with.
    let echo = COctetString::from_string(request.system_id.clone()).unwrap_or_default();
    let resp: Pdu = match kind {
        BindKind::Transmitter => rusmpp::pdus::BindTransmitterResp::new(echo, None).into(),
        BindKind::Receiver => rusmpp::pdus::BindReceiverResp::new(echo, None).into(),
        BindKind::Transceiver => rusmpp::pdus::BindTransceiverResp::new(echo, None).into(),
    };
    Ok((
        resp,
        Bound {
            info,
            _guard: guard,
            bucket,
        },
    ))
}

fn decode_request(frame: Frame, kind: BindKind) -> Result<Request, CommandStatus> {
    let command_id = frame.header.command_id;
    let is_submission = matches!(
        command_id,
        ids::SUBMIT_SM | ids::SUBMIT_MULTI | ids::DATA_SM | ids::REPLACE_SM
    );
    if is_submission && !kind.can_submit() {
        return Err(CommandStatus::EsmeRinvbndsts);
    }
    let command = frame.decode().map_err(|e| status::for_body_error(&e))?;
    let Some(pdu) = command.into_parts().pdu else {
        return Err(CommandStatus::EsmeRinvcmdlen);
    };
    Ok(match pdu {
        Pdu::SubmitSm(p) => Request::SubmitSm(Box::new(p)),
        Pdu::SubmitMulti(p) => Request::SubmitMulti(Box::new(p)),
        Pdu::DataSm(p) => Request::DataSm(Box::new(p)),
        Pdu::QuerySm(p) => Request::QuerySm(Box::new(p)),
        Pdu::CancelSm(p) => Request::CancelSm(Box::new(p)),
        Pdu::ReplaceSm(p) => Request::ReplaceSm(Box::new(p)),
        // deliver_sm and the like travel from the SMSC to the ESME, not the other way.
        _ => return Err(CommandStatus::EsmeRinvcmdid),
    })
}

fn is_submission(request: &Request) -> bool {
    matches!(
        request,
        Request::SubmitSm(_) | Request::SubmitMulti(_) | Request::DataSm(_)
    )
}

fn encode_response(buf: &mut BytesMut, sequence: u32, response_id: u32, response: Response) {
    match response {
        Response::Ok(pdu) => {
            frame::encode_command(&Command::new(CommandStatus::EsmeRok, sequence, pdu), buf)
        }
        Response::Empty => frame::encode_header_only(response_id, 0, sequence, buf),
        Response::Error(status) => {
            frame::encode_header_only(response_id, u32::from(status), sequence, buf)
        }
    }
}

fn reply_status(buf: &mut BytesMut, response_id: u32, status: CommandStatus, sequence: u32) {
    frame::encode_header_only(response_id, u32::from(status), sequence, buf);
}

fn nack(buf: &mut BytesMut, status: CommandStatus, sequence: u32) {
    frame::encode_header_only(ids::GENERIC_NACK, u32::from(status), sequence, buf);
}

//! The server session over real sockets: binds, state rules, windowing, malformed input,
//! timers, deliver_sm from the router and graceful shutdown.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::*;
use smpp_core::{
    BindKind,
    frame::ids,
    rusmpp::{
        CommandStatus, Pdu,
        pdus::{DeliverSm, DeliverSmResp},
        types::{COctetString, OctetString},
    },
    server::{Outbound, OutboundResult, ServerConfig},
};

fn quick_config() -> ServerConfig {
    ServerConfig {
        window: 4,
        pdu_read_timeout: Duration::from_millis(300),
        bind_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(300),
        max_command_length: 4096,
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn every_bind_kind_is_accepted_and_echoes_the_system_id() {
    let server = start_server(quick_config()).await;
    for kind in [
        BindKind::Transmitter,
        BindKind::Receiver,
        BindKind::Transceiver,
    ] {
        let mut esme = RawEsme::connect(server.addr).await;
        assert_eq!(
            esme.bind(kind, "esme", "secret").await,
            CommandStatus::EsmeRok
        );
        // A second bind on a bound session is refused.
        assert_eq!(
            esme.bind(kind, "esme", "secret").await,
            CommandStatus::EsmeRalybnd
        );
    }
    assert_eq!(server.handler.bound.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_the_session_closed() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::connect(server.addr).await;
    assert_eq!(
        esme.bind(BindKind::Transceiver, "esme", "wrong").await,
        CommandStatus::EsmeRinvpaswd
    );
    assert!(esme.closed().await);

    let mut esme = RawEsme::connect(server.addr).await;
    assert_eq!(
        esme.bind(BindKind::Transmitter, "nobody", "x").await,
        CommandStatus::EsmeRinvsysid
    );
    assert!(esme.closed().await);
}

#[tokio::test]
async fn enquire_link_is_answered_before_and_after_bind() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::connect(server.addr).await;
    let seq = esme.send(Pdu::EnquireLink).await;
    let header = esme.recv_header().await;
    assert_eq!(
        (header.command_id, header.sequence_number),
        (ids::ENQUIRE_LINK_RESP, seq)
    );
    assert_eq!(
        esme.bind(BindKind::Transceiver, "esme", "secret").await,
        CommandStatus::EsmeRok
    );
    esme.send(Pdu::EnquireLink).await;
    assert_eq!(esme.recv_header().await.status(), CommandStatus::EsmeRok);
}

#[tokio::test]
async fn requests_in_the_wrong_state_get_invalid_bind_status() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::connect(server.addr).await;
    esme.submit("123").await;
    let header = esme.recv_header().await;
    assert_eq!(header.command_id, ids::SUBMIT_SM_RESP);
    assert_eq!(header.status(), CommandStatus::EsmeRinvbndsts);
    esme.send(Pdu::Unbind).await;
    assert_eq!(
        esme.recv_header().await.status(),
        CommandStatus::EsmeRinvbndsts
    );

    let mut receiver = RawEsme::bound(server.addr, BindKind::Receiver).await;
    receiver.submit("123").await;
    assert_eq!(
        receiver.recv_header().await.status(),
        CommandStatus::EsmeRinvbndsts
    );
}

#[tokio::test]
async fn submits_are_answered_and_out_of_order_when_handlers_finish_so() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let slow = esme.submit("slow").await;
    let fast = esme.submit("998901234567").await;
    let (first, first_cmd) = esme.recv().await.unwrap();
    assert_eq!(first.sequence_number, fast);
    assert_eq!(message_id(&first_cmd), "id-998901234567");
    let (second, second_cmd) = esme.recv().await.unwrap();
    assert_eq!(second.sequence_number, slow);
    assert_eq!(message_id(&second_cmd), "id-slow");
}

#[tokio::test]
async fn a_full_window_answers_throttled_and_recovers() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transmitter).await;
    for _ in 0..4 {
        esme.submit("hang").await;
    }
    let overflow = esme.submit("123").await;
    let header = esme.recv_header().await;
    assert_eq!(header.sequence_number, overflow);
    assert_eq!(header.status(), CommandStatus::EsmeRthrottled);
    server.handler.release.notify_waiters();
    for _ in 0..4 {
        assert_eq!(esme.recv_header().await.status(), CommandStatus::EsmeRok);
    }
    esme.submit("123").await;
    assert_eq!(esme.recv_header().await.status(), CommandStatus::EsmeRok);
}

#[tokio::test]
async fn unknown_command_ids_get_generic_nack_and_the_session_goes_on() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    esme.send_raw(&raw_pdu(0x0000_0999, 77, &[])).await;
    let header = esme.recv_header().await;
    assert_eq!(header.command_id, ids::GENERIC_NACK);
    assert_eq!(header.status(), CommandStatus::EsmeRinvcmdid);
    assert_eq!(header.sequence_number, 77);
    esme.submit("123").await;
    assert_eq!(esme.recv_header().await.status(), CommandStatus::EsmeRok);
}

#[tokio::test]
async fn malformed_bodies_get_an_error_response_and_do_not_eat_the_next_pdu() {
    let server = start_server(quick_config()).await;
    // A bind whose system_id never ends inside the frame, then a good bind.
    let mut esme = RawEsme::connect(server.addr).await;
    let mut bytes = raw_pdu(ids::BIND_TRANSCEIVER, 1, b"esme");
    bytes.extend(raw_pdu(ids::ENQUIRE_LINK, 2, &[]));
    esme.send_raw(&bytes).await;
    let header = esme.recv_header().await;
    assert_eq!(
        (header.command_id, header.sequence_number),
        (ids::BIND_TRANSCEIVER | 0x8000_0000, 1)
    );
    assert_eq!(header.status(), CommandStatus::EsmeRinvcmdlen);
    // A refused bind closes the session, as for wrong credentials.
    assert!(esme.closed().await);

    // A bound session: submit_sm whose sm_length runs past the frame, then a good one.
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let mut body = Vec::new();
    body.extend_from_slice(b"\0\x01\x01BANK\0\x01\x01123\0"); // service_type … destination
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]); // esm … sm_default_msg_id (empty times)
    body.push(200); // sm_length far beyond the frame
    body.extend_from_slice(b"short");
    esme.send_raw(&raw_pdu(ids::SUBMIT_SM, 9, &body)).await;
    let good = esme.submit("123").await;
    let header = esme.recv_header().await;
    assert_eq!(
        (header.command_id, header.sequence_number),
        (ids::SUBMIT_SM_RESP, 9)
    );
    assert_ne!(header.status(), CommandStatus::EsmeRok);
    let header = esme.recv_header().await;
    assert_eq!(header.sequence_number, good);
    assert_eq!(header.status(), CommandStatus::EsmeRok);
}

#[tokio::test]
async fn impossible_command_lengths_close_the_session() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    esme.send_raw(&[0, 1, 0, 0, 0, 0, 0, 4]).await; // 65536 > 4096
    let header = esme.recv_header().await;
    assert_eq!(header.command_id, ids::GENERIC_NACK);
    assert_eq!(header.status(), CommandStatus::EsmeRinvcmdlen);
    assert!(esme.closed().await);

    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    esme.send_raw(&[0, 0, 0, 8, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1])
        .await;
    assert_eq!(esme.recv_header().await.command_id, ids::GENERIC_NACK);
    assert!(esme.closed().await);
}

#[tokio::test]
async fn a_byte_at_a_time_writer_is_served() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let pdu = smpp_core::frame::command_bytes(&smpp_core::rusmpp::Command::new(
        CommandStatus::EsmeRok,
        42,
        submit_sm("998900000001"),
    ));
    for byte in pdu.iter() {
        esme.send_raw(&[*byte]).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (header, command) = esme.recv().await.unwrap();
    assert_eq!(header.sequence_number, 42);
    assert_eq!(message_id(&command), "id-998900000001");
}

#[tokio::test]
async fn a_partial_pdu_that_never_completes_is_nacked_and_closed() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    esme.send_raw(&[0, 0, 0, 40, 0, 0, 0, 4]).await;
    let header = esme.recv_header().await;
    assert_eq!(header.command_id, ids::GENERIC_NACK);
    assert_eq!(header.status(), CommandStatus::EsmeRinvcmdlen);
    assert!(esme.closed().await);
}

#[tokio::test]
async fn an_abrupt_disconnect_mid_pdu_frees_the_session() {
    let server = start_server(quick_config()).await;
    {
        let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
        esme.send_raw(&[0, 0, 0, 60, 0, 0, 0, 4, 0, 0]).await;
    }
    for _ in 0..200 {
        if server.registry.connections() == 0 && server.registry.bound_sessions().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session still registered after the peer vanished");
}

#[tokio::test]
async fn no_bind_within_the_bind_timeout_closes() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::connect(server.addr).await;
    assert!(esme.closed().await);
}

#[tokio::test]
async fn unbind_answers_in_flight_requests_first() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let submit = esme.submit("slow").await;
    let unbind = esme.send(Pdu::Unbind).await;
    let first = esme.recv_header().await;
    assert_eq!(
        (first.command_id, first.sequence_number),
        (ids::SUBMIT_SM_RESP, submit)
    );
    let second = esme.recv_header().await;
    assert_eq!(
        (second.command_id, second.sequence_number),
        (ids::UNBIND_RESP, unbind)
    );
    assert!(esme.closed().await);
}

#[tokio::test]
async fn sessions_per_user_are_capped() {
    let server = start_server(quick_config()).await;
    let _a = RawEsme::bound(server.addr, BindKind::Transmitter).await;
    let _b = RawEsme::bound(server.addr, BindKind::Receiver).await;
    let mut third = RawEsme::connect(server.addr).await;
    assert_eq!(
        third.bind(BindKind::Transceiver, "esme", "secret").await,
        CommandStatus::EsmeRbindfail
    );
}

#[tokio::test]
async fn total_sessions_are_capped() {
    let server = start_server(ServerConfig {
        max_sessions: 1,
        ..quick_config()
    })
    .await;
    let _first = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let mut second = RawEsme::connect(server.addr).await;
    assert!(second.closed().await);
}

#[tokio::test]
async fn the_submit_rate_cap_answers_throttled() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::connect(server.addr).await;
    assert_eq!(
        esme.bind(BindKind::Transmitter, "limited", "secret").await,
        CommandStatus::EsmeRok
    );
    let mut throttled = 0;
    for _ in 0..20 {
        esme.submit("123").await;
    }
    for _ in 0..20 {
        if esme.recv_header().await.status() == CommandStatus::EsmeRthrottled {
            throttled += 1;
        }
    }
    // 5/s with a burst of 5: at least 14 of 20 back-to-back submits are refused.
    assert!(throttled >= 14, "only {throttled} throttled");
}

fn deliver_sm(text: &str) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_string("998901234567".to_owned()).unwrap())
        .destination_addr(COctetString::from_string("1234".to_owned()).unwrap())
        .short_message(OctetString::from_vec(text.as_bytes().to_vec()).unwrap())
        .build()
}

#[tokio::test]
async fn deliver_sm_reaches_a_receiver_and_its_answer_comes_back() {
    let server = start_server(quick_config()).await;
    let _transmitter = RawEsme::bound(server.addr, BindKind::Transmitter).await;
    let mut receiver = RawEsme::bound(server.addr, BindKind::Receiver).await;
    assert_eq!(server.registry.receivers("esme"), 1);

    let (outbound, result) = Outbound::with_reply(deliver_sm("hello"));
    server.registry.deliver("esme", outbound).unwrap();
    let (header, command) = receiver.recv().await.unwrap();
    assert_eq!(header.command_id, ids::DELIVER_SM);
    match command.and_then(|c| c.into_parts().pdu) {
        Some(Pdu::DeliverSm(pdu)) => assert_eq!(pdu.short_message().as_ref(), b"hello"),
        other => panic!("expected deliver_sm, got {other:?}"),
    }
    let resp = smpp_core::rusmpp::Command::new(
        CommandStatus::EsmeRok,
        header.sequence_number,
        DeliverSmResp::default(),
    );
    receiver
        .send_raw(&smpp_core::frame::command_bytes(&resp))
        .await;
    assert_eq!(
        result.await.unwrap(),
        OutboundResult::Answered(CommandStatus::EsmeRok)
    );

    // Unanswered: the router learns of the timeout.
    let (outbound, result) = Outbound::with_reply(deliver_sm("again"));
    server.registry.deliver("esme", outbound).unwrap();
    assert_eq!(receiver.recv_header().await.command_id, ids::DELIVER_SM);
    assert_eq!(result.await.unwrap(), OutboundResult::Timeout);

    // Nobody bound as receiver for that user: the PDU comes back.
    assert!(
        server
            .registry
            .deliver("nobody", Outbound::new(deliver_sm("x")))
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_unbinds_bound_sessions_and_returns() {
    let server = start_server(quick_config()).await;
    let mut esme = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let submit = esme.submit("slow").await;
    server.handler.wait_started(1).await;
    server.shutdown.cancel();
    let first = esme.recv_header().await;
    assert_eq!(
        (first.command_id, first.sequence_number),
        (ids::SUBMIT_SM_RESP, submit)
    );
    assert_eq!(first.status(), CommandStatus::EsmeRok);
    let unbind = esme.recv_header().await;
    assert_eq!(unbind.command_id, ids::UNBIND);
    esme.send_raw(&raw_pdu(ids::UNBIND_RESP, unbind.sequence_number, &[]))
        .await;
    assert!(esme.closed().await);
    tokio::time::timeout(WAIT, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn repeated_bad_passwords_lock_the_system_id_out_for_that_address() {
    let server = start_server(ServerConfig {
        guard: smpp_core::server::GuardConfig {
            max_bind_failures: 2,
            failure_delay: Duration::from_millis(1),
            ..Default::default()
        },
        ..quick_config()
    })
    .await;
    for _ in 0..2 {
        let mut esme = RawEsme::connect(server.addr).await;
        assert_eq!(
            esme.bind(BindKind::Transceiver, "esme", "guess").await,
            CommandStatus::EsmeRinvpaswd
        );
    }
    // Even the right password is refused while locked out.
    let mut esme = RawEsme::connect(server.addr).await;
    assert_eq!(
        esme.bind(BindKind::Transceiver, "esme", "secret").await,
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(server.handler.bound.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let server = start_server(ServerConfig {
        guard: smpp_core::server::GuardConfig {
            max_connections_per_ip: 1,
            ..Default::default()
        },
        ..quick_config()
    })
    .await;
    let _first = RawEsme::bound(server.addr, BindKind::Transceiver).await;
    let mut second = RawEsme::connect(server.addr).await;
    assert!(second.closed().await);
}

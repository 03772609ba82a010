//! A raw ESME, scripted PDU by PDU: sends any request PDU (query_sm, cancel_sm…), reads
//! the answers, and answers the gateway's deliver_sm with a status of the test's choice.

use std::time::Duration;

use bytes::BytesMut;
use smpp_core::{
    frame::{self, Framer, Header, ids},
    rusmpp::{
        Command, CommandStatus, Pdu,
        pdus::{BindTransceiver, DeliverSm, DeliverSmResp},
        types::COctetString,
        values::InterfaceVersion,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::WAIT;

pub struct RawEsme {
    stream: TcpStream,
    buf: BytesMut,
    framer: Framer,
    seq: u32,
    /// deliver_sm that arrived while waiting for a response.
    pub delivered: Vec<(u32, DeliverSm)>,
}

impl RawEsme {
    pub async fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: BytesMut::new(),
            framer: Framer::new(1 << 20),
            seq: 0,
            delivered: Vec::new(),
        }
    }

    /// Connect and bind as a transceiver; returns the bind_transceiver_resp status.
    pub async fn bind(port: u16, user: &str, password: &str) -> (Self, CommandStatus) {
        let mut esme = Self::connect(port).await;
        let pdu = BindTransceiver::builder()
            .system_id(COctetString::from_string(user.to_owned()).expect("system_id"))
            .password(COctetString::from_string(password.to_owned()).expect("password"))
            .interface_version(InterfaceVersion::Smpp3_4)
            .build();
        let (status, _) = esme.request(pdu).await;
        (esme, status)
    }

    pub async fn bound(port: u16, user: &str, password: &str) -> Self {
        let (esme, status) = Self::bind(port, user, password).await;
        assert_eq!(status, CommandStatus::EsmeRok, "bind of {user}");
        esme
    }

    pub async fn send(&mut self, pdu: impl Into<Pdu>) -> u32 {
        self.seq += 1;
        let command = Command::new(CommandStatus::EsmeRok, self.seq, pdu.into());
        self.write(&command).await;
        self.seq
    }

    async fn write(&mut self, command: &Command) {
        let bytes = frame::command_bytes(command);
        self.stream.write_all(&bytes).await.expect("write");
    }

    /// The next PDU from the gateway (enquire_link answered on the way).
    pub async fn recv(&mut self) -> (Header, Option<Pdu>) {
        loop {
            if let Some(frame) = self.framer.next_frame(&mut self.buf).expect("framing") {
                let header = frame.header;
                let pdu = frame.decode().ok().and_then(|c| c.into_parts().pdu);
                if header.command_id == ids::ENQUIRE_LINK {
                    let resp = Command::new(
                        CommandStatus::EsmeRok,
                        header.sequence_number,
                        Pdu::EnquireLinkResp,
                    );
                    self.write(&resp).await;
                    continue;
                }
                return (header, pdu);
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a PDU within the wait");
            match read {
                Ok(0) | Err(_) => panic!("connection closed"),
                Ok(_) => {}
            }
        }
    }

    /// Send a request and wait for its response: (status, body). deliver_sm arriving
    /// meanwhile are answered ESME_ROK and kept in `delivered`.
    pub async fn request(&mut self, pdu: impl Into<Pdu>) -> (CommandStatus, Option<Pdu>) {
        let seq = self.send(pdu).await;
        loop {
            let (header, pdu) = self.recv().await;
            if header.command_id == ids::DELIVER_SM {
                if let Some(Pdu::DeliverSm(d)) = pdu {
                    self.delivered.push((header.sequence_number, d));
                }
                self.answer(header.sequence_number, CommandStatus::EsmeRok)
                    .await;
                continue;
            }
            assert_eq!(header.sequence_number, seq, "response to our request");
            return (header.status(), pdu);
        }
    }

    /// The next deliver_sm (sequence number and PDU), not answered yet.
    pub async fn next_deliver(&mut self) -> (u32, DeliverSm) {
        loop {
            let (header, pdu) = self.recv().await;
            if let Some(Pdu::DeliverSm(d)) = pdu {
                return (header.sequence_number, d);
            }
        }
    }

    /// No deliver_sm within `window`.
    pub async fn quiet_for(&mut self, window: Duration) -> bool {
        tokio::time::timeout(window, self.next_deliver())
            .await
            .is_err()
    }

    pub async fn answer(&mut self, sequence: u32, status: CommandStatus) {
        let resp = Command::new(
            status,
            sequence,
            Pdu::DeliverSmResp(DeliverSmResp::default()),
        );
        self.write(&resp).await;
    }
}

//! A scriptable raw ESME and a test server for the session tests.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::{BufMut, BytesMut};
use smpp_core::{
    BindKind,
    frame::{self, Framer, Header},
    rusmpp::{
        Command, CommandStatus, Pdu,
        pdus::{BindReceiver, BindTransceiver, BindTransmitter, SubmitSm, SubmitSmResp},
        types::{COctetString, OctetString},
        values::InterfaceVersion,
    },
    server::{
        Authenticator, BindGrant, BindRequest, Request, RequestHandler, Response, Server,
        ServerConfig, SessionInfo, SessionRegistry,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(10);

/// Accepts `esme`/`secret`; submit_sm to "slow" answers after 300 ms, to "hang" waits
/// until `release` is notified, anything else answers at once with id `id-<dest>`.
pub struct TestHandler {
    pub release: Notify,
    pub bound: std::sync::atomic::AtomicUsize,
    /// Requests the handler has started on.
    pub started: std::sync::atomic::AtomicUsize,
}

impl TestHandler {
    /// Wait until the handler has started on `n` requests.
    pub async fn wait_started(&self, n: usize) {
        for _ in 0..1000 {
            if self.started.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("handler never saw {n} requests");
    }
}

impl Authenticator for TestHandler {
    async fn authenticate(&self, request: &BindRequest) -> Result<BindGrant, CommandStatus> {
        match (request.system_id.as_str(), request.password.as_str()) {
            ("esme", "secret") => Ok(BindGrant {
                system_id: "esme".into(),
                max_sessions: Some(2),
                submit_rate: None,
            }),
            ("limited", "secret") => Ok(BindGrant {
                system_id: "limited".into(),
                max_sessions: None,
                submit_rate: Some(5.0),
            }),
            ("esme" | "limited", _) => Err(CommandStatus::EsmeRinvpaswd),
            _ => Err(CommandStatus::EsmeRinvsysid),
        }
    }
}

impl RequestHandler for TestHandler {
    async fn handle(&self, _session: &Arc<SessionInfo>, request: Request) -> Response {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Request::SubmitSm(pdu) = request else {
            return Response::Error(CommandStatus::EsmeRsyserr);
        };
        let destination = pdu.destination_addr.as_str().to_owned();
        match destination.as_str() {
            "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
            "hang" => self.release.notified().await,
            _ => {}
        }
        let id = COctetString::from_string(format!("id-{destination}")).unwrap();
        Response::Ok(SubmitSmResp::new(id, Vec::new()).into())
    }

    fn on_bound(&self, _session: &Arc<SessionInfo>) {
        self.bound.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handler: Arc<TestHandler>,
    pub registry: Arc<SessionRegistry>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn start_server(config: ServerConfig) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(TestHandler {
        release: Notify::new(),
        bound: Default::default(),
        started: Default::default(),
    });
    let registry = SessionRegistry::new();
    let shutdown = CancellationToken::new();
    let server = Server::new(config, handler.clone(), handler.clone(), registry.clone());
    let token = shutdown.clone();
    let task = tokio::spawn(async move { server.serve(listener, token).await });
    TestServer {
        addr,
        handler,
        registry,
        shutdown,
        task,
    }
}

/// A raw ESME: writes whatever bytes a test wants and reads frames back.
pub struct RawEsme {
    stream: TcpStream,
    buf: BytesMut,
    framer: Framer,
    seq: u32,
}

impl RawEsme {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: BytesMut::new(),
            framer: Framer::new(1 << 20),
            seq: 0,
        }
    }

    /// An ESME on a socket the test set up itself (e.g. with a small receive buffer).
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            framer: Framer::new(1 << 20),
            seq: 0,
        }
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    pub async fn send(&mut self, pdu: impl Into<Pdu>) -> u32 {
        let seq = self.next_seq();
        let command = Command::new(CommandStatus::EsmeRok, seq, pdu.into());
        self.send_raw(&frame::command_bytes(&command)).await;
        seq
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next PDU, as header and decoded command (None if the body does not decode).
    pub async fn recv(&mut self) -> Option<(Header, Option<Command>)> {
        loop {
            if let Some(frame) = self.framer.next_frame(&mut self.buf).unwrap() {
                let header = frame.header;
                return Some((header, frame.decode().ok()));
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("no PDU within the wait");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn recv_header(&mut self) -> Header {
        self.recv().await.expect("connection closed").0
    }

    /// True when the server closed the connection (after any PDUs it still sent).
    pub async fn closed(&mut self) -> bool {
        loop {
            match self.recv().await {
                None => return true,
                Some(_) => continue,
            }
        }
    }

    pub async fn bind(&mut self, kind: BindKind, system_id: &str, password: &str) -> CommandStatus {
        let system_id = COctetString::from_string(system_id.to_owned()).unwrap();
        let password = COctetString::from_string(password.to_owned()).unwrap();
        let pdu: Pdu = match kind {
            BindKind::Transmitter => BindTransmitter::builder()
                .system_id(system_id)
                .password(password)
                .interface_version(InterfaceVersion::Smpp3_4)
                .build()
                .into(),
            BindKind::Receiver => BindReceiver::builder()
                .system_id(system_id)
                .password(password)
                .interface_version(InterfaceVersion::Smpp3_4)
                .build()
                .into(),
            BindKind::Transceiver => BindTransceiver::builder()
                .system_id(system_id)
                .password(password)
                .interface_version(InterfaceVersion::Smpp3_4)
                .build()
                .into(),
        };
        let seq = self.send(pdu).await;
        let header = self.recv_header().await;
        assert_eq!(header.sequence_number, seq);
        assert_eq!(header.command_id, kind.command_id() | 0x8000_0000);
        header.status()
    }

    pub async fn bound(addr: SocketAddr, kind: BindKind) -> Self {
        let mut esme = Self::connect(addr).await;
        assert_eq!(
            esme.bind(kind, "esme", "secret").await,
            CommandStatus::EsmeRok
        );
        esme
    }

    pub async fn submit(&mut self, destination: &str) -> u32 {
        self.send(submit_sm(destination)).await
    }
}

pub fn submit_sm(destination: &str) -> SubmitSm {
    SubmitSm::builder()
        .source_addr(COctetString::from_string("BANK".to_owned()).unwrap())
        .destination_addr(COctetString::from_string(destination.to_owned()).unwrap())
        .short_message(OctetString::from_vec(b"Your code is 1234".to_vec()).unwrap())
        .build()
}

/// A PDU from raw parts: for bodies that lie about their contents.
pub fn raw_pdu(command_id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u32((16 + body.len()) as u32);
    buf.put_u32(command_id);
    buf.put_u32(0);
    buf.put_u32(sequence);
    buf.put_slice(body);
    buf.to_vec()
}

pub fn message_id(command: &Option<Command>) -> String {
    match command.as_ref().and_then(|c| c.pdu()) {
        Some(Pdu::SubmitSmResp(resp)) => resp.message_id().as_str().to_owned(),
        other => panic!("expected submit_sm_resp, got {other:?}"),
    }
}

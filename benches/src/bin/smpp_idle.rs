//! `smpp-idle`: binds N transceiver sessions and holds them idle (answering
//! enquire_link), so the gateway's resident memory per idle bound session can be read
//! from outside. Prints one JSON line once every session is bound, then holds for
//! `--hold` seconds and unbinds by closing.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser, Debug)]
#[command(about = "Bind N idle SMPP sessions and hold them")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2775")]
    target: String,
    #[arg(long, default_value = "load")]
    system_id: String,
    #[arg(long, default_value = "load")]
    password: String,
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Seconds to hold the sessions after all are bound.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Binds in flight at once.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
}

const BIND_TRANSCEIVER: u32 = 0x0000_0009;
const ENQUIRE_LINK: u32 = 0x0000_0015;
const GENERIC_ACK_BIT: u32 = 0x8000_0000;

fn pdu(command: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(&command.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn bind_body(system_id: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for field in [system_id, password, ""] {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    body.extend_from_slice(&[0x34, 0, 0, 0]);
    body
}

/// Reads one PDU: (command_id, command_status, sequence).
async fn read_pdu(stream: &mut TcpStream) -> std::io::Result<(u32, u32, u32)> {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).await?;
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = word(0) as usize;
    let mut rest = vec![0u8; len.saturating_sub(16)];
    stream.read_exact(&mut rest).await?;
    Ok((word(4), word(8), word(12)))
}

async fn bind(target: &str, body: &[u8]) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(target).await?;
    stream.write_all(&pdu(BIND_TRANSCEIVER, 1, body)).await?;
    let (command, status, _) = read_pdu(&mut stream).await?;
    anyhow::ensure!(
        command == BIND_TRANSCEIVER | GENERIC_ACK_BIT && status == 0,
        "bind refused: command {command:#x} status {status:#x}"
    );
    Ok(stream)
}

/// Holds a bound session: answers enquire_link, ignores anything else.
async fn hold(mut stream: TcpStream) {
    while let Ok((command, _, sequence)) = read_pdu(&mut stream).await {
        if command == ENQUIRE_LINK
            && stream
                .write_all(&pdu(ENQUIRE_LINK | GENERIC_ACK_BIT, sequence, &[]))
                .await
                .is_err()
        {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = bind_body(&args.system_id, &args.password);
    let started = Instant::now();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let mut binds = tokio::task::JoinSet::new();
    for _ in 0..args.sessions {
        let permit = semaphore.clone().acquire_owned().await?;
        let (target, body) = (args.target.clone(), body.clone());
        binds.spawn(async move {
            let result = bind(&target, &body).await;
            drop(permit);
            result
        });
    }
    let mut held = tokio::task::JoinSet::new();
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(result) = binds.join_next().await {
        match result? {
            Ok(stream) => {
                held.spawn(hold(stream));
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "sessions": args.sessions,
            "bound": args.sessions - failed,
            "failed": failed,
            "first_error": first_error,
            "bind_seconds": started.elapsed().as_secs_f64(),
        })
    );
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    held.abort_all();
    Ok(())
}

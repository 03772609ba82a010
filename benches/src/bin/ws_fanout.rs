//! `ws-fanout`: CLIENTS WebSocket connections of one account follow its receipts
//! (`/api/v1/notifications/dlr`) while REST v1 sends of BATCH recipients each are paced
//! to RATE messages a second for SECONDS. Prints one JSON line: what was sent, what each
//! client received (every client gets every receipt), the receipts a second delivered
//! to all clients together, and the delay from a send's answer to a client's copy of its
//! receipt (sampled: one event in SAMPLE is parsed, so the clients stay cheap).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

#[derive(Parser, Debug)]
struct Args {
    /// The gateway's HTTP listener.
    #[arg(long, default_value = "127.0.0.1:1401")]
    http: String,
    /// An API key with sms:send and sms:read.
    #[arg(long)]
    key: String,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Messages a second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Recipients per send.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Parse one event in this many for the delay.
    #[arg(long, default_value_t = 50)]
    sample: u64,
    /// Wait this long after the last send for receipts still on their way.
    #[arg(long, default_value_t = 15.0)]
    drain: f64,
}

/// When each message's send was answered, by id.
type Answered = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let answered: Answered = Arc::default();
    let delays = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?));
    let counts: Vec<Arc<AtomicU64>> = (0..args.clients).map(|_| Arc::default()).collect();
    let last_event = Arc::new(Mutex::new(None::<Instant>));

    for count in &counts {
        let mut request =
            format!("ws://{}/api/v1/notifications/dlr", args.http).into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", args.key).parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let (count, answered, delays, last_event, sample) = (
            count.clone(),
            answered.clone(),
            delays.clone(),
            last_event.clone(),
            args.sample,
        );
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                if !text.contains("\"receipt\"") {
                    continue;
                }
                let n = count.fetch_add(1, Ordering::Relaxed);
                *last_event.lock().unwrap() = Some(Instant::now());
                if n % sample != 0 {
                    continue;
                }
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let sent = event["message_id"]
                    .as_str()
                    .and_then(|id| answered.lock().unwrap().get(id).copied());
                if let Some(sent) = sent {
                    let us = sent.elapsed().as_micros() as u64;
                    let _ = delays.lock().unwrap().record(us.max(1));
                }
            }
        });
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url: hyper::Uri = format!("http://{}/api/v1/sms/send", args.http).parse()?;
    let every = Duration::from_secs_f64(args.batch as f64 / args.rate);
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    // Sends overlap (up to IN_FLIGHT), so that a slow answer does not lower the rate.
    const IN_FLIGHT: usize = 16;
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut sends = Vec::new();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < args.seconds {
        tick.tick().await;
        let permit = slots.clone().acquire_owned().await?;
        let to: Vec<String> = (0..args.batch)
            .map(|_| {
                n += 1;
                format!("2557{:08}", n % 100_000_000)
            })
            .collect();
        let body = serde_json::json!({"to": to, "text": "fan-out"}).to_string();
        let request = hyper::Request::post(url.clone())
            .header("authorization", format!("Bearer {}", args.key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (client, answered, sent, refused, batch) = (
            client.clone(),
            answered.clone(),
            sent.clone(),
            refused.clone(),
            args.batch as u64,
        );
        sends.push(tokio::spawn(async move {
            let _permit = permit;
            let response = client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let at = Instant::now();
            if status != 202 {
                refused.fetch_add(batch, Ordering::Relaxed);
                return Ok::<_, anyhow::Error>(());
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            let mut map = answered.lock().unwrap();
            for m in answer["messages"].as_array().into_iter().flatten() {
                if let Some(id) = m["id"].as_str() {
                    map.insert(id.to_owned(), at);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    for send in sends {
        send.await??;
    }
    let sending = started.elapsed();
    let (sent, refused) = (
        sent.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    // Receipts still on their way: until every client has one per message, or the drain.
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    while Instant::now() < deadline && counts.iter().any(|c| c.load(Ordering::Relaxed) < sent) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = received.iter().sum();
    let span = last_event
        .lock()
        .unwrap()
        .map_or(sending, |last| last.duration_since(started));
    let delays = delays.lock().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "clients": args.clients,
            "offered_per_s": args.rate,
            "sent": sent,
            "refused": refused,
            "send_seconds": sending.as_secs_f64(),
            "sent_per_s": sent as f64 / sending.as_secs_f64(),
            "received_min": received.iter().min(),
            "received_max": received.iter().max(),
            "events_delivered": total,
            "events_per_s": total as f64 / span.as_secs_f64(),
            "receipts_per_s_per_client": total as f64 / span.as_secs_f64() / args.clients as f64,
            "delay_ms": {
                "p50": delays.value_at_quantile(0.5) as f64 / 1000.0,
                "p99": delays.value_at_quantile(0.99) as f64 / 1000.0,
                "max": delays.max() as f64 / 1000.0,
                "samples": delays.len(),
            },
        })
    );
    Ok(())
}

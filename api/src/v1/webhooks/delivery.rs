//! The delivery worker: due events read from the outbox, one task per attempt with a
//! deadline, at most `PER_WEBHOOK` at once per webhook, each attempt logged.

use super::*;

/// Events being attempted, and attempts in flight per webhook.
#[derive(Default)]
struct Busy {
    events: HashSet<String>,
    per_hook: HashMap<String, usize>,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> Result<HttpClient, tls::TlsError> {
    let tls = tls::https_client_config(None)?;
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// One attempt: the status, or why there is none.
async fn attempt(client: &HttpClient, e: &Outgoing, timeout: Duration) -> Result<u16, String> {
    let t = now_us() / 1_000_000;
    let request = Request::builder()
        .method(Method::POST)
        .uri(&e.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "smsgw-webhooks/1")
        .header(SIGNATURE_HEADER, signature(&e.secret, t, &e.body))
        .header("smsgw-event-id", &e.id)
        .body(Full::new(Bytes::from(e.body.clone())))
        .map_err(|error| format!("bad request: {error}"))?;
    let call = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Read (and drop) the body so the connection can be reused.
        let _ = response.into_body().collect().await;
        Ok(status)
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// The delivery worker: reads due events from the outbox and attempts them, each in
/// its own task. Ends when `shutdown` is cancelled.
pub async fn run(v1: V1, shutdown: CancellationToken) {
    let client = match client() {
        Ok(c) => c,
        Err(error) => {
            warn!(%error, "webhooks disabled: no HTTPS client");
            return;
        }
    };
    let config = v1.config().clone();
    let total = Arc::new(Semaphore::new(TOTAL));
    let busy: Arc<Mutex<Busy>> = Arc::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = v1.inner.hooks.wake.notified() => {}
            _ = tokio::time::sleep(config.webhook_poll) => {}
        }
        let due = match v1.db().due_events(now_us(), BATCH).await {
            Ok(due) => due,
            Err(error) => {
                warn!(%error, "webhook outbox unreadable");
                continue;
            }
        };
        for e in due {
            if e.webhook_deleted {
                if let Err(error) = v1
                    .db()
                    .record_attempt(&e.id, e.attempts, now_us(), None, None, "cancelled", None)
                    .await
                {
                    warn!(%error, "webhook event not cancelled");
                }
                continue;
            }
            {
                let mut b = busy.lock();
                let count = b.per_hook.get(&e.webhook_id).copied().unwrap_or(0);
                if b.events.contains(&e.id) || count >= PER_WEBHOOK {
                    continue;
                }
                b.events.insert(e.id.clone());
                *b.per_hook.entry(e.webhook_id.clone()).or_default() += 1;
            }
            let Ok(permit) = total.clone().try_acquire_owned() else {
                let mut b = busy.lock();
                b.events.remove(&e.id);
                if let Some(c) = b.per_hook.get_mut(&e.webhook_id) {
                    *c = c.saturating_sub(1);
                }
                break;
            };
            let (v1, client, busy, config) =
                (v1.clone(), client.clone(), busy.clone(), config.clone());
            tokio::spawn(async move {
                let result = attempt(&client, &e, config.webhook_timeout).await;
                let n = e.attempts + 1;
                let now = now_us();
                let (status, error) = match &result {
                    Ok(status) => (Some(*status), None),
                    Err(error) => (None, Some(error.as_str())),
                };
                let ok = matches!(result, Ok(s) if (200..300).contains(&s));
                let window =
                    i64::try_from(config.webhook_retry_window.as_micros()).unwrap_or(i64::MAX);
                let (state, next_at) = if ok {
                    ("delivered", None)
                } else if now.saturating_sub(e.created_at) >= window {
                    ("failed", None)
                } else {
                    let delay = backoff(config.webhook_retry_base, config.webhook_retry_max, n);
                    let delay = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
                    ("pending", Some(now.saturating_add(delay)))
                };
                debug!(event = %e.id, url = %e.url, ?result, state, "webhook attempt");
                if let Err(error) = v1
                    .db()
                    .record_attempt(&e.id, n, now, status, error, state, next_at)
                    .await
                {
                    warn!(%error, "webhook attempt not recorded");
                }
                let mut b = busy.lock();
                b.events.remove(&e.id);
                if let Some(c) = b.per_hook.get_mut(&e.webhook_id) {
                    *c = c.saturating_sub(1);
                }
                drop(permit);
                // A slot is free: look for more at once.
                v1.inner.hooks.wake.notify_one();
            });
        }
    }
}

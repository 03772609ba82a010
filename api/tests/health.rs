//! The health endpoints over a real socket.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use api::{Check, HealthSource};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Switch(AtomicBool);

impl HealthSource for Switch {
    fn readiness(&self) -> Vec<Check> {
        let store = self.0.load(Ordering::Relaxed);
        vec![
            Check::new("accepting", true, ""),
            Check::new(
                "billing_store",
                store,
                if store { "" } else { "unreachable" },
            ),
        ]
    }
}

#[tokio::test]
async fn ready_follows_the_checks_and_live_does_not() {
    let switch = Arc::new(Switch::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(api::serve(
        listener,
        api::router(switch.clone()),
        stop.clone(),
    ));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |path: &str| {
        let client = client.clone();
        let uri: hyper::Uri = format!("http://{addr}{path}").parse().unwrap();
        async move {
            let resp = client.get(uri).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    let (status, body) = get("/health/ready").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("billing_store: failing unreachable"),
        "{body}"
    );
    assert_eq!(get("/health/live").await.0, 200);

    switch.0.store(true, Ordering::Relaxed);
    let (status, body) = get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready\n"));
    assert_eq!(get("/nope").await.0, 404);

    stop.cancel();
    server.await.unwrap().unwrap();
}

//! Repeated authentication failures over HTTP are slowed down and then locked out, as
//! SMPP binds are (the same guard): after five wrong passwords even the right one gets
//! Jasmin's authentication failure until the lockout ends.

mod common;

use common::Setup;

const WRONG: &str = "/send?username=bank&password=bad&to=255700000001&content=x";
const RIGHT: &str = "/send?username=bank&password=pw&to=255700000001&content=x";
const FAILURE: &str = r#"Error "Authentication failure for username:bank""#;

#[tokio::test]
async fn repeated_failures_lock_the_username_out_of_http() {
    let s = Setup::start().await;
    // Before any failure the right password works.
    assert_eq!(s.get(RIGHT).await.status, 200);
    for _ in 0..5 {
        let reply = s.get(WRONG).await;
        assert_eq!((reply.status, reply.body.as_str()), (403, FAILURE));
    }
    // Locked out: the right password is refused unverified, with the same answer.
    let reply = s.get(RIGHT).await;
    assert_eq!((reply.status, reply.body.as_str()), (403, FAILURE));
}

//! Jasmin's HTTP API over real sockets: `/send` to the SMSC simulator, every error
//! answer of `/send`, long content at the part limit, `/balance`, `/rate`, `/ping`, and
//! a DLR level 2 callback (docs/jasmin-compat.md §1, §2).

mod common;

use common::{Hook, Setup, success_id};
use serde_json::json;

#[tokio::test]
async fn send_reaches_the_operator_as_submit_sm() {
    let mut s = Setup::start().await;
    let reply = s
        .get("/send?username=bank&password=pw&to=%2B255700000001&from=BANK&content=hello+world&priority=2")
        .await;
    assert_eq!(reply.content_type, "text/plain");
    success_id(&reply);
    let got = s.next_submit().await;
    assert_eq!(got.pdu.destination_addr.as_str(), "+255700000001");
    assert_eq!(got.pdu.source_addr.as_str(), "BANK");
    assert_eq!(got.pdu.short_message().as_ref(), b"hello world");
    assert_eq!(u8::from(got.pdu.priority_flag), 2);
    assert_eq!(u8::from(got.pdu.data_coding), 0);
    assert_eq!(u8::from(got.pdu.registered_delivery), 0);

    // POST form, coding 8 given as UTF-8 text: UCS-2 on the wire.
    let reply = s
        .post_form(
            "/send",
            "username=bank&password=pw&to=255700000002&coding=8&content=%D0%BF%D1%80%D0%B8",
        )
        .await;
    success_id(&reply);
    let got = s.next_submit().await;
    assert_eq!(u8::from(got.pdu.data_coding), 8);
    assert_eq!(
        got.pdu.short_message().as_ref(),
        &[0x04, 0x3F, 0x04, 0x40, 0x04, 0x38]
    );

    // JSON body; coding 0 text becomes GSM 03.38 ('@' is 0x00, '€' ESC 0x65).
    let body = r#"{"username":"bank","password":"pw","to":"255700000003","content":"@€"}"#;
    let headers = [("content-type", "application/json")];
    let reply = s.request("POST", "/send", &headers, body).await;
    success_id(&reply);
    let got = s.next_submit().await;
    assert_eq!(got.pdu.short_message().as_ref(), &[0x00, 0x1B, 0x65]);

    // hex-content goes as is.
    let reply = s
        .get("/send?username=bank&password=pw&to=255700000004&coding=4&hex-content=00ff41")
        .await;
    success_id(&reply);
    let got = s.next_submit().await;
    assert_eq!(got.pdu.short_message().as_ref(), &[0x00, 0xFF, 0x41]);
}

#[tokio::test]
async fn send_errors_match_jasmin() {
    let mut s = Setup::start().await;
    let ok = "username=bank&password=pw&to=255700000001&content=x";
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "username=bank&password=bad&to=255700000001&content=x".into(),
            403,
            r#"Error "Authentication failure for username:bank""#,
        ),
        (
            "username=nobody&password=pw&to=255700000001&content=x".into(),
            403,
            r#"Error "Authentication failure for username:nobody""#,
        ),
        (
            "username=bank&password=pw&content=x".into(),
            400,
            r#"Error "Mandatory argument [to] is not found.""#,
        ),
        (
            String::new(),
            400,
            r#"Error "Mandatory argument [to] is not found.""#,
        ),
        (
            format!("foo=1&{ok}"),
            400,
            r#"Error "Argument [foo] is unknown.""#,
        ),
        (
            format!("{ok}&coding=11"),
            400,
            r#"Error "Argument [coding] has an invalid value: [11].""#,
        ),
        (
            format!("{ok}&dlr-level=4"),
            400,
            r#"Error "Argument [dlr-level] has an invalid value: [4].""#,
        ),
        (
            format!("{ok}&dlr-url=ftp://x"),
            400,
            r#"Error "Argument [dlr-url] has an invalid value: [ftp://x].""#,
        ),
        (
            "username=bank&password=pw&to=255700000001".into(),
            400,
            r#"Error "content or hex-content not present.""#,
        ),
        (
            format!("{ok}&hex-content=41"),
            400,
            r#"Error "content and hex-content cannot be used both in same request.""#,
        ),
        (
            "username=bank&password=pw&to=255700000001&hex-content=zz".into(),
            400,
            r#"Error "Invalid hex-content data: 'zz'""#,
        ),
        (
            "username=bank&password=pw&to=1234&content=x".into(),
            412,
            r#"Error "No route found""#,
        ),
        (
            "username=poor&password=pw&to=255700000001&content=x".into(),
            403,
            r#"Error "Cannot charge submit_sm, check RouterPB log file for details""#,
        ),
    ];
    for (query, status, body) in cases {
        let reply = s.get(&format!("/send?{query}")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{query}"
        );
    }
    // JSON with a charset suffix is not read, as in Jasmin.
    let headers = [("content-type", "application/json; charset=utf-8")];
    let reply = s
        .request("POST", "/send", &headers, r#"{"username":"bank"}"#)
        .await;
    assert_eq!(reply.status, 400);
    // Oversized bodies are refused before parsing.
    let big = format!("{ok}&tags={}", "a".repeat(api::jasmin::MAX_BODY));
    let reply = s.post_form("/send", &big).await;
    assert_eq!(reply.status, 413);
    s.no_more_submits().await;
}

#[tokio::test]
async fn long_content_at_the_part_limit_and_one_over() {
    let mut s = Setup::start().await;
    // 3 parts of 153 septets is the limit of this gateway (long_content_max_parts = 3).
    let at_limit = "a".repeat(153 * 3);
    let reply = s
        .get(&format!(
            "/send?username=bank&password=pw&to=255700000001&content={at_limit}"
        ))
        .await;
    success_id(&reply);
    for seq in 1..=3u8 {
        let got = s.next_submit().await;
        let sm = got.pdu.short_message().as_ref().to_vec();
        assert_eq!(&sm[..3], &[5, 0, 3], "UDH");
        assert_eq!(&sm[4..6], &[3, seq]);
        assert_eq!(sm.len(), 6 + 153);
        assert_eq!(u8::from(got.pdu.esm_class) & 0x40, 0x40);
    }
    let over = "a".repeat(153 * 3 + 1);
    let reply = s
        .get(&format!(
            "/send?username=bank&password=pw&to=255700000001&content={over}"
        ))
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.body,
        r#"Error "Argument [content] has an invalid value: [4 parts, at most 3].""#
    );
    let reply = s
        .get(&format!(
            "/send?username=short&password=pw&to=255700000001&content={}",
            "b".repeat(161)
        ))
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            400,
            r#"Error "Authorization failed for user [short] (Long content not authorized).""#
        )
    );
    s.no_more_submits().await;
}

#[tokio::test]
async fn balance_and_rate_answer_jasmin_json() {
    let s = Setup::start().await;
    let reply = s.get("/balance?username=bank&password=pw").await;
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"balance": 10.0, "sms_count": 100}))
    );
    let reply = s.post_form("/balance", "username=poor&password=pw").await;
    assert_eq!(reply.json(), json!({"balance": 0.01, "sms_count": "ND"}));
    let reply = s.get("/balance?username=bank&password=no").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, r#""Authentication failure for username:bank""#)
    );
    let reply = s.get("/balance?username=short&password=pw").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            400,
            json!("Authorization failed for user [short] (Cannot check balance).")
        )
    );
    let reply = s.get("/balance").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            400,
            json!("Mandatory arguments not found, please refer to the HTTPAPI specifications.")
        )
    );
    let reply = s.get("/balance?username=bank&password=pw&to=1").await;
    assert_eq!(
        (reply.status, reply.json()),
        (400, json!("Argument [to] is unknown."))
    );

    let long = "c".repeat(200);
    let reply = s
        .get(&format!(
            "/rate?username=bank&password=pw&to=255700000001&content={long}"
        ))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"submit_sm_count": 2, "unit_rate": 0.02}))
    );
    let reply = s
        .get("/rate?username=bank&password=pw&to=255700000001")
        .await;
    assert_eq!(
        reply.json(),
        json!({"submit_sm_count": 1, "unit_rate": 0.02})
    );
    // No balance quota: Jasmin bills nothing.
    let reply = s
        .get("/rate?username=short&password=pw&to=255700000001&content=x")
        .await;
    assert_eq!(
        reply.json(),
        json!({"submit_sm_count": 1, "unit_rate": 0.0})
    );
    let reply = s
        .get("/rate?username=bank&password=pw&to=1&content=x")
        .await;
    assert_eq!((reply.status, reply.json()), (412, json!("No route found")));
    let reply = s.get("/rate?username=bank&password=pw&content=x").await;
    assert_eq!(
        (reply.status, reply.json()),
        (400, json!("Mandatory argument [to] is not found."))
    );
}

#[tokio::test]
async fn ping_answers_pong() {
    let s = Setup::start().await;
    let reply = s.get("/ping").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Jasmin/PONG"));
}

#[tokio::test]
async fn dlr_level_2_callback_reaches_the_dlr_url() {
    let mut s = Setup::start().await;
    let hook = Hook::start(&s.shutdown).await;
    let url = format!("{}/dlr", hook.base);
    let reply = s
        .post_form(
            "/send",
            &format!("username=bank&password=pw&to=255700000001&content=hi&dlr-url={url}&dlr-level=2&dlr-method=GET"),
        )
        .await;
    let id = success_id(&reply);
    let got = s.next_submit().await;
    assert_eq!(
        u8::from(got.pdu.registered_delivery) & 3,
        1,
        "receipt asked"
    );
    let callback = hook.wait_for("/dlr").await;
    assert_eq!(callback.method, "GET");
    assert_eq!(callback.param("id"), Some(id));
    assert_eq!(callback.param("level").as_deref(), Some("2"));
    assert_eq!(callback.param("message_status").as_deref(), Some("DELIVRD"));
}

//! No credentials, a wrong password and an expired username are each refused, the log names the
//! cause, and the server goes on serving.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_expired_credentials_are_refused() {
    let lab = start(|_| {}).await;
    let addr = lab.server.udp_addr();

    let (_c, r) = try_allocate(addr, "", "").await;
    assert!(r.is_err(), "no credentials must be refused");

    let good = lab
        .server
        .credentials("mallory", now(), rtclab_turn::DEFAULT_TTL);
    let (_c, r) = try_allocate(addr, &good.username, "not-the-password").await;
    assert!(r.is_err(), "a wrong password must be refused");

    // Issued two hours ago with a one-hour TTL: expired an hour ago.
    let old = lab.server.credentials(
        "mallory",
        now() - 7200,
        std::time::Duration::from_secs(3600),
    );
    let (_c, r) = try_allocate(addr, &old.username, &old.password).await;
    assert!(r.is_err(), "an expired username must be refused");

    // A username signed with another secret.
    let forged =
        rtclab_turn::credentials::issue("guess", "mallory", now(), rtclab_turn::DEFAULT_TTL);
    let (_c, r) = try_allocate(addr, &forged.username, &forged.password).await;
    assert!(
        r.is_err(),
        "credentials under another secret must be refused"
    );

    assert_eq!(lab.server.allocations(), 0, "no allocation was granted");
    let refused = refusals(&lab);
    let reasons: Vec<&str> = refused.iter().map(|(_, _, r)| r.as_str()).collect();
    assert!(
        refused
            .iter()
            .all(|(m, code, _)| m == "allocate" && *code == 401),
        // RFC 8489 §9.2.4: an invalid username or a wrong password is 401 (Unauthenticated).
        "each refusal is a 401 to an Allocate: {refused:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("is not `expiry:user`")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("wrong password")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("expired")), "{reasons:?}");

    still_serves(&lab).await;
}

//! One user cannot hold more allocations than the quota; other users are not affected.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_beyond_the_per_user_quota_are_refused() {
    let lab = start(|c| c.policy.max_allocations_per_user = 2).await;
    let addr = lab.server.udp_addr();
    let creds = lab
        .server
        .credentials("carol", now(), rtclab_turn::DEFAULT_TTL);

    let (_c1, r1) = try_allocate(addr, &creds.username, &creds.password).await;
    let (_c2, r2) = try_allocate(addr, &creds.username, &creds.password).await;
    r1.expect("first allocation");
    r2.expect("second allocation");
    // A new username for the same user (a later expiry) counts against the same quota.
    let later = lab
        .server
        .credentials("carol", now() + 60, rtclab_turn::DEFAULT_TTL);
    let (_c3, r3) = try_allocate(addr, &later.username, &later.password).await;
    assert!(r3.is_err(), "a third allocation for carol must be refused");
    assert_eq!(lab.server.allocations(), 2);

    let refused = refusals(&lab);
    assert!(
        refused
            .iter()
            .any(|(m, code, _)| m == "allocate" && *code == 486),
        "486 Allocation Quota Reached logged: {refused:?}"
    );
    still_serves(&lab).await;
}

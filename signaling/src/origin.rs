//! Which web pages may use the server: the `Origin` check on the WebSocket upgrade and on the
//! live control's `POST /api/impair`.
//!
//! A browser sends `Origin` on every WebSocket upgrade and every cross-origin POST (RFC 6454
//! §7.3, RFC 6455 §4.1), and a page on any site may open a socket to `ws://127.0.0.1:8080` or
//! POST a `text/plain` body to it without a CORS preflight. Without this check any web page the
//! lab's user visits could join a room or change the impairment of a running session (RFC 6455
//! §10.2 asks servers to check the origin). Clients that are not browsers (rtclab's peers,
//! `curl`, test harnesses) send no `Origin` and are not affected.

use std::net::IpAddr;

/// Whether a request with this `Origin` (and `Host`) may go on: no `Origin` (not a browser),
/// the server's own origin (same host and port as `Host`), a loopback origin (the lab runs on
/// one machine), or one listed with `--allow-origin`.
pub fn allowed(origin: Option<&str>, host: Option<&str>, extra: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if extra.iter().any(|o| o.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        // `null` (a sandboxed frame, a file:// page) and other schemes.
        return false;
    };
    if host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
        return true;
    }
    is_loopback_authority(authority)
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The message a refused page gets.
pub fn refusal(origin: &str) -> String {
    format!(
        "origin {origin} may not use this server: only its own pages and pages served from \
         loopback may (a page on another site must not join rooms or change the network); \
         start the server with --allow-origin {origin} to allow it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_from_elsewhere_are_refused_other_clients_pass() {
        let host = Some("127.0.0.1:8080");
        assert!(allowed(None, host, &[]), "no Origin: not a browser");
        assert!(allowed(Some("http://127.0.0.1:8080"), host, &[]));
        assert!(allowed(Some("http://localhost:3000"), host, &[]));
        assert!(allowed(Some("http://[::1]:8080"), host, &[]));
        assert!(allowed(
            Some("http://lab.example:8080"),
            Some("lab.example:8080"),
            &[]
        ));
        assert!(!allowed(Some("https://evil.example"), host, &[]));
        assert!(!allowed(Some("http://127.0.0.1.evil.example"), host, &[]));
        assert!(!allowed(Some("null"), host, &[]));
        assert!(allowed(
            Some("https://app.example"),
            host,
            &["https://app.example/".to_owned()]
        ));
    }
}

//! The remote policy from the outside: which URLs pass, what a refusal says, which credential
//! a URL gets, and what is scrubbed.

use super::*;

const TOKEN: &str = "s3cret-token";

fn token(url_prefix: &str, token: &str) -> Credential {
    Credential {
        url_prefix: url_prefix.into(),
        secret: Secret::Token {
            username: "x-access-token".into(),
            token: token.into(),
        },
    }
}

fn access() -> RemoteAccess {
    RemoteAccess {
        allowed: vec![
            "https://git.example/acme".into(),
            "git://127.0.0.1:9418".into(),
        ],
        credentials: vec![token("https://git.example/acme/", TOKEN)],
    }
}

/// The review's setup: one allowed origin, and a credential for it.
fn review() -> RemoteAccess {
    RemoteAccess {
        allowed: vec!["http://git.allowed.invalid".into()],
        credentials: vec![token("http://git.allowed.invalid", TOKEN)],
    }
}

fn allowed(access: &RemoteAccess, url: &str) -> bool {
    access.check(url).is_ok()
}

/// The refusal's message; panics if `url` is allowed.
fn refusal(access: &RemoteAccess, url: &str) -> String {
    match access.check(url) {
        Err(GitError::RemoteNotAllowed(message)) => message,
        other => panic!("{url}: {other:?}"),
    }
}

/// The token the host would present for `url`, which `check` has passed.
fn token_for<'a>(access: &'a RemoteAccess, url: &str) -> Option<&'a str> {
    access
        .credential_for_request(url, url)
        .map(|c| match &c.secret {
            Secret::Token { token, .. } => token.as_str(),
            Secret::SshKey { username, .. } => username.as_str(),
        })
}

#[test]
fn the_reviews_empty_user_info_trick_is_refused_and_shown_for_what_it_is() {
    let a = review();
    let url = "http://git.allowed.invalid:@127.0.0.1:4242/acme/repo.git";
    let message = refusal(&a, url);
    assert!(message.contains("user info"), "{message}");
    assert!(
        message.starts_with("http://127.0.0.1:4242/acme/repo.git"),
        "{message}"
    );
    assert!(message.contains("host 127.0.0.1, port 4242"), "{message}");
    assert!(!message.contains("git.allowed.invalid"), "{message}");
    assert_eq!(token_for(&a, url), None);
    // The credential is still there for the real thing.
    assert!(allowed(&a, "http://git.allowed.invalid/acme/repo.git"));
    assert_eq!(
        token_for(&a, "http://git.allowed.invalid/acme/repo.git"),
        Some(TOKEN)
    );
}

#[test]
fn user_info_is_refused_in_every_form_without_echoing_it() {
    let a = review();
    for url in [
        "http://git.allowed.invalid@127.0.0.1/x",
        "http://user:hunter2@git.allowed.invalid/x",
        "http://:@git.allowed.invalid/x",
        "http://@git.allowed.invalid/x",
        "http://a@b@git.allowed.invalid/x",
    ] {
        let message = refusal(&a, url);
        assert!(message.contains("user info"), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            !message.contains("@git") && !message.contains("@127"),
            "{message}"
        );
        assert_eq!(token_for(&a, url), None, "{url}");
    }
    let message = refusal(&a, "http://git.allowed.invalid@127.0.0.1/x");
    assert!(message.contains("host 127.0.0.1, port 80"), "{message}");
    assert!(!message.contains("git.allowed.invalid"), "{message}");
    // Unparseable, with a password in it: the user info is still dropped.
    let message = refusal(&a, "http://bob:hun ter2@git.allowed.invalid/x");
    assert!(!message.contains("hun"), "{message}");
}

#[test]
fn hosts_and_ports_must_be_exactly_allowed() {
    let a = review();
    let message = refusal(&a, "http://git.allowed.invalid.evil.com/x");
    assert!(
        message.contains("host git.allowed.invalid.evil.com is not allowed"),
        "{message}"
    );
    let message = refusal(&a, "http://git.allowed.invalid:8080/x");
    assert!(message.contains("port 8080 is not allowed"), "{message}");
    assert_eq!(token_for(&a, "http://git.allowed.invalid:8080/x"), None);
    let message = refusal(&a, "https://git.allowed.invalid/x");
    assert!(message.contains("scheme https is not allowed"), "{message}");
    for bad in [
        "http://evil.git.allowed.invalid/x",
        "http://git.allowed.invalid./x",
        "http://127.0.0.1/git.allowed.invalid/x",
    ] {
        assert!(!allowed(&a, bad), "{bad}");
    }
    // The default port, explicit or not; any case in scheme and host.
    for ok in [
        "http://git.allowed.invalid:80/x",
        "http://git.allowed.invalid",
        "http://git.allowed.invalid/",
        "HTTP://GIT.ALLOWED.INVALID/acme/x",
        "Http://Git.Allowed.Invalid:80/acme/x",
    ] {
        assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
        assert_eq!(token_for(&a, ok), Some(TOKEN), "{ok}");
    }
}

#[test]
fn paths_match_on_segment_boundaries_only() {
    let a = access();
    for ok in [
        "https://git.example/acme",
        "https://git.example/acme/",
        "https://git.example/acme/repo.git",
        "https://git.example:443/acme/sub/repo.git",
        "https://git.example/acme/a%20b.git",
    ] {
        assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
    }
    for bad in [
        "https://git.example/acme-evil/x",
        "https://git.example/acmex",
        "https://git.example/ACME/x",
        "https://git.example/other",
        "https://git.example/",
        "https://git.example//acme/x",
        "https://git.example/acme//x",
        "https://git.example/acme/../other",
        "https://git.example/acme/./x",
        "https://git.example/acme/..",
        "https://git.example/acme/%2e%2e/other",
        "https://git.example/acme/%2E%2e",
        "https://git.example/acme/.%2e/other",
        "https://git.example/acme%2Fother",
        "https://git.example/acme%2f..%2fother",
        "https://git.example/acme/%5c..",
        "https://git.example/acme/%252e%252e",
        "https://git.example/acme/%00x",
        "https://git.example/acme/%zz",
        "https://git.example/acme/x%2",
        "https://git.example/acme/é",
    ] {
        assert!(!allowed(&a, bad), "{bad}");
    }
    let message = refusal(&a, "https://git.example/acme-evil/x");
    assert!(message.contains("path /acme-evil/x"), "{message}");
    let message = refusal(&a, "https://git.example/acme/../other");
    assert!(message.contains("`..`"), "{message}");
}

#[test]
fn a_trailing_slash_in_a_rule_changes_nothing() {
    for rule in ["https://git.example/acme/", "https://git.example/acme"] {
        let a = RemoteAccess {
            allowed: vec![rule.into()],
            credentials: Vec::new(),
        };
        assert!(allowed(&a, "https://git.example/acme"), "{rule}");
        assert!(allowed(&a, "https://git.example/acme/x.git"), "{rule}");
        assert!(!allowed(&a, "https://git.example/acmex/x.git"), "{rule}");
        assert!(!allowed(&a, "https://git.example/acme-evil"), "{rule}");
    }
}

#[test]
fn ipv6_literals_are_compared_as_addresses_and_written_plainly() {
    let a = RemoteAccess {
        allowed: vec!["git://[0:0::1]/".into()],
        credentials: vec![token("http://[::1]:8080/acme", TOKEN)],
    };
    assert!(allowed(&a, "git://[::1]/x.git"));
    assert!(allowed(&a, "git://[::1]:9418/x.git"));
    for bad in [
        "git://[::2]/x.git",
        "git://[::1]:9419/x.git",
        "git://[0:0::1]/x.git",
        "git://[::1%25lo]/x.git",
        "git://[::1/x.git",
        "git://[::1]x/x.git",
        "git://::1/x.git",
        "git://[::ffff:127.0.0.1]/x.git",
    ] {
        assert!(!allowed(&a, bad), "{bad}");
    }
    let message = refusal(&a, "git://::1/x.git");
    assert!(message.contains("brackets"), "{message}");
    let message = refusal(&a, "git://[::2]/x.git");
    assert!(message.contains("host [::2]"), "{message}");
    // libgit2 writes the URL without brackets for the HTTP credential callback.
    let b = RemoteAccess {
        allowed: vec!["http://[::1]:8080/".into()],
        ..a
    };
    let url = "http://[::1]:8080/acme/x.git";
    assert!(allowed(&b, url));
    let asked = b.credential_for_request(url, "http://::1:8080/acme/x.git");
    assert!(asked.is_some());
}

#[test]
fn hosts_must_be_written_in_normal_form() {
    let a = RemoteAccess {
        allowed: vec!["http://127.0.0.1/".into(), "https://bücher.example/".into()],
        credentials: Vec::new(),
    };
    assert!(allowed(&a, "http://127.0.0.1/x"));
    assert!(allowed(&a, "https://xn--bcher-kva.example/x"));
    assert!(allowed(&a, "https://XN--BCHER-KVA.example/x"));
    for bad in [
        "http://0x7f.0.0.1/x",
        "http://2130706433/x",
        "http://127.1/x",
        "http://0177.0.0.1/x",
        "http://127%2e0.0.1/x",
        "https://bücher.example/x",
        "https://BÜCHER.example/x",
    ] {
        let message = refusal(&a, bad);
        assert!(message.contains("normal form"), "{bad}: {message}");
    }
    let message = refusal(&a, "http://0x7f.0.0.1/x");
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[test]
fn backslashes_whitespace_controls_and_other_syntax_are_refused() {
    let a = review();
    for bad in [
        "http://git.allowed.invalid\\@127.0.0.1/x",
        "http://git.allowed.invalid/acme\\..\\x",
        " http://git.allowed.invalid/x",
        "http://git.allowed.invalid/x ",
        "http://git.allowed.invalid/x\n",
        "http://git.allowed.invalid/a b",
        "http://git.allowed.invalid/a\tb",
        "http://git.allowed.invalid/a\0b",
        "http://git.allowed.invalid/a\u{7f}b",
        "http://git.allowed.invalid/a\u{a0}b",
        "http://git.allowed.invalid?@127.0.0.1/x",
        "http://127.0.0.1#@git.allowed.invalid/x",
        "http://git.allowed.invalid/x?y",
        "http:///git.allowed.invalid/x",
        "http:/git.allowed.invalid/x",
        "http:git.allowed.invalid/x",
        "//git.allowed.invalid/x",
        "-http://git.allowed.invalid/x",
        "ftp://git.allowed.invalid/x",
        "",
    ] {
        assert!(!allowed(&a, bad), "{bad:?}");
        assert_eq!(token_for(&a, bad), None, "{bad:?}");
    }
    let message = refusal(&a, "http://git.allowed.invalid/x\n");
    assert!(
        message.contains("\\n"),
        "control characters are escaped: {message}"
    );
    assert!(refusal(&a, "http://a\\@b/").contains("backslash"));
}

#[test]
fn empty_hosts_and_ports_are_refused() {
    let a = review();
    for (bad, why) in [
        ("http:///x", "host is empty"),
        ("http://", "host is empty"),
        ("http://:80/x", "host is empty"),
        ("http://git.allowed.invalid:/x", "port is empty"),
        ("http://git.allowed.invalid:0/x", "port is not a number"),
        ("http://git.allowed.invalid:65536/x", "port is not a number"),
        ("http://git.allowed.invalid:+80/x", "port is not a number"),
        (
            "http://git.allowed.invalid:000080/x",
            "port is not a number",
        ),
    ] {
        let message = refusal(&a, bad);
        assert!(message.contains(why), "{bad}: {message}");
    }
}

#[test]
fn scp_like_addresses_and_local_paths_are_refused_with_a_hint() {
    let a = RemoteAccess {
        allowed: vec![
            "ssh://git@github.com/acme/".into(),
            "file:///srv/git".into(),
        ],
        credentials: Vec::new(),
    };
    assert!(refusal(&a, "git@github.com:acme/x.git").contains("ssh://"));
    assert!(refusal(&a, "/srv/git/x.git").contains("file:///path"));
    assert!(allowed(&a, "file:///srv/git/x.git"));
    for bad in [
        "file:///srv/gitx",
        "file:///srv/git/../x",
        "file://localhost/srv/git/x",
        "file:////srv/git/x",
        "file://",
    ] {
        assert!(!allowed(&a, bad), "{bad}");
    }
    assert!(refusal(&a, "file:///etc").contains("path /etc"));
    let closed = review();
    assert!(refusal(&closed, "file:///etc").contains("local repositories"));
}

#[test]
fn an_ssh_user_is_allowed_only_as_the_rule_names_it() {
    let a = RemoteAccess {
        allowed: vec!["ssh://git@github.com/acme/".into()],
        credentials: Vec::new(),
    };
    for ok in [
        "ssh://git@github.com/acme/x.git",
        "ssh://github.com/acme/x.git",
        "git+ssh://git@github.com:22/acme/x.git",
    ] {
        assert!(allowed(&a, ok), "{ok}: {:?}", a.check(ok));
    }
    assert!(refusal(&a, "ssh://root@github.com/acme/x.git").contains("ssh user"));
    for bad in [
        "ssh://git:pw@github.com/acme/x.git",
        "ssh://git@evil@github.com/acme/x.git",
        "ssh://@github.com/acme/x.git",
        "ssh://-oProxyCommand=x@github.com/acme/x.git",
    ] {
        assert!(refusal(&a, bad).contains("user info"), "{bad}");
    }
    assert!(!allowed(&a, "ssh://-oproxycommand=x/acme/x.git"));
}

#[test]
fn credentials_follow_the_same_rules() {
    let mut a = access();
    a.allowed.push("https://git.example:8443/acme".into());
    a.allowed.push("http://git.example/acme".into());
    a.credentials
        .push(token("https://git.example/acme/special", "special"));
    assert_eq!(token_for(&a, "https://git.example/acme/r.git"), Some(TOKEN));
    assert_eq!(token_for(&a, "https://git.example/acme"), Some(TOKEN));
    assert_eq!(
        token_for(&a, "HTTPS://GIT.EXAMPLE:443/acme/r.git"),
        Some(TOKEN)
    );
    assert_eq!(
        token_for(&a, "https://git.example/acme/special/r.git"),
        Some("special"),
        "the most specific rule wins"
    );
    assert_eq!(
        token_for(&a, "https://git.example/acme/specialx/r.git"),
        Some(TOKEN)
    );
    for none in [
        "https://git.example:8443/acme/r.git",
        "http://git.example/acme/r.git",
        "https://git.example/acme-evil/r.git",
        "https://git.example/acme/../r.git",
        "https://x@git.example/acme/r.git",
        "https://git.example.evil/acme/r.git",
        "git://127.0.0.1:9418/acme/r.git",
    ] {
        assert_eq!(token_for(&a, none), None, "{none}");
    }
    // After a redirect libgit2 asks for the URL it was sent to: only its own credential.
    let checked = "https://git.example/acme/r.git";
    let asks = |asked: &str| a.credential_for_request(checked, asked).is_some();
    assert!(asks(checked));
    assert!(asks("https://git.example/acme/moved.git/info/refs"));
    assert!(!asks("https://evil.example/acme/r.git"));
    assert!(!asks("https://git.example:8443/acme/r.git"));
    assert!(!asks("https://git.example/other/r.git"));
    assert!(!asks("https://git.example/acme/../r.git"));
    assert!(!asks("https://u:p@git.example/acme/r.git"));
    assert!(!asks("::1"));
}

#[test]
fn bad_rules_are_config_errors_that_say_why() {
    assert_eq!(access().validate(), Ok(()));
    assert_eq!(RemoteAccess::default().validate(), Ok(()));
    for (rule, why) in [
        ("git://127.0.0.1:", "port is empty"),
        ("https://user:pw@git.example/", "user info"),
        ("https://tok@git.example/", "user info"),
        ("ftp://git.example/", "scheme `ftp` is not supported"),
        ("https://git.example/a/../b", "`..`"),
        ("git@github.com:acme/", "scp-like"),
        ("/srv/git", "file:///path"),
        ("", "empty"),
        ("https://", "host is empty"),
        ("https://git.example/?x", "query"),
        (" https://git.example/", "whitespace"),
    ] {
        let a = RemoteAccess {
            allowed: vec![rule.into()],
            credentials: Vec::new(),
        };
        let error = a.validate().expect_err(rule).to_string();
        assert!(error.starts_with("allowed_remotes entry"), "{error}");
        assert!(error.contains(why), "{rule}: {error}");
        assert!(!error.contains("pw") && !error.contains("tok@"), "{error}");
        // A broken list allows nothing.
        assert!(!allowed(&a, "https://git.example/a"), "{rule}");
    }
    let a = RemoteAccess {
        allowed: Vec::new(),
        credentials: vec![token("https://git.example/a/%2e%2e", TOKEN)],
    };
    let error = a.validate().expect_err("bad credential rule").to_string();
    assert!(error.starts_with("credential url_prefix"), "{error}");
    // Rules may be written in any form the parser normalises.
    let a = RemoteAccess {
        allowed: vec![
            "HTTPS://Git.Example:443/acme/".into(),
            "https://bücher.example".into(),
            "http://127.1".into(),
            "ssh://git@github.com/".into(),
            "file:///srv/git/".into(),
        ],
        credentials: Vec::new(),
    };
    assert_eq!(a.validate(), Ok(()));
    assert!(allowed(&a, "https://git.example/acme/x"));
    assert!(allowed(&a, "http://127.0.0.1/x"));
}

#[test]
fn remotes_are_matched_at_boundaries() {
    let a = access();
    for ok in [
        "https://git.example/acme",
        "https://git.example/acme/repo.git",
        "git://127.0.0.1:9418/repo.git",
        "git://127.0.0.1/repo.git",
    ] {
        assert!(a.check(ok).is_ok(), "{ok}");
    }
    for bad in [
        "https://git.example/acme-evil/repo.git",
        "https://git.example/acme/../other/repo.git",
        "https://git.example/acme/%2e%2e/other",
        "https://git.example/other",
        "/etc",
        "file:///etc",
        "git://127.0.0.2:9418/x",
        "git://127.0.0.1:9419/x",
        "https://git.example/acme/ x",
    ] {
        assert!(
            matches!(a.check(bad), Err(GitError::RemoteNotAllowed(_))),
            "{bad}"
        );
    }
    assert!(RemoteAccess::default().check("https://x/").is_err());
    assert!(refusal(&RemoteAccess::default(), "https://x/").contains("no remote"));
}

#[test]
fn secrets_and_user_info_are_scrubbed() {
    let a = access();
    let message =
        a.redact("failed for https://bob:hunter2@git.example/acme/r.git with s3cret-token inside");
    assert_eq!(
        message,
        "failed for https://git.example/acme/r.git with [redacted] inside"
    );
    assert!(!format!("{a:?}").contains("s3cret-token"));
    assert_eq!(display_url("no urls here"), "no urls here");
}

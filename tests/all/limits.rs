//! Limits, tested both ways with a real guest: a runaway call ends with the right kind of
//! failure, and the next call on the same runtime works.

use hearth_tests::TestSession;
use serde_json::json;

fn next_call_works(s: &TestSession) {
    s.ok(
        "hostile",
        json!({ "action": "read", "path": "/workspace/ok.txt" }),
    );
    s.ok(
        "write_file",
        json!({ "file_path": "/workspace/after.txt", "content": "fine" }),
    );
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let s = TestSession::new();
    s.put("ok.txt", "x");
    let (code, message) = s.err("hostile", json!({ "action": "spin" }));
    assert_eq!(code, "deadline_exceeded", "{message}");
    next_call_works(&s);
}

#[test]
fn a_sleep_in_the_host_still_hits_the_deadline() {
    // Blocked in a host call, a guest is out of reach of epoch checks; the host cuts its sleep
    // at the deadline so the call ends on time instead of after 30 s.
    let s = TestSession::new();
    s.put("ok.txt", "x");
    let started = std::time::Instant::now();
    let (code, message) = s.err("hostile", json!({ "action": "sleep", "ms": 30_000 }));
    assert_eq!(code, "deadline_exceeded", "{message}");
    // The one place a duration is the property under test: an unclamped sleep would return
    // after 30 s (and then trap), so the bound is loose enough never to flake.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the sleep was not cut at the deadline"
    );
    next_call_works(&s);
    // A short sleep within the deadline is served normally.
    assert_eq!(
        s.ok("hostile", json!({ "action": "sleep", "ms": 20 }))["ok"],
        true
    );
}

#[test]
fn a_memory_hog_hits_the_memory_cap() {
    let s = TestSession::new();
    s.put("ok.txt", "x");
    let (code, message) = s.err("hostile", json!({ "action": "hog" }));
    assert_eq!(code, "memory_exceeded", "{message}");
    next_call_works(&s);
}

#[test]
fn a_panic_is_a_crash_with_its_message() {
    let s = TestSession::new();
    s.put("ok.txt", "x");
    match s.call("hostile", json!({ "action": "panic" })) {
        Err(hearth_runtime::CallError::Crashed { stderr, .. }) => {
            assert!(stderr.contains("panicked on purpose"), "{stderr}");
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    next_call_works(&s);
}

#[test]
fn exiting_instead_of_returning_is_a_crash_not_a_host_fault() {
    let s = TestSession::new();
    s.put("ok.txt", "x");
    let (code, message) = s.err("hostile", json!({ "action": "exit" }));
    assert_eq!(code, "tool_crashed", "{message}");
    next_call_works(&s);
}

#[test]
fn chatty_output_is_capped_not_fatal() {
    let s = TestSession::new();
    let out = s.ok(
        "hostile",
        json!({ "action": "print", "bytes": 4 * 1024 * 1024 }),
    );
    assert_eq!(out["ok"], true);
}

#[test]
fn within_limits_the_same_guest_succeeds() {
    let s = TestSession::new();
    s.put("ok.txt", "x");
    next_call_works(&s);
}

//! The git helper: one operation on one session's repository, confined and bounded (see
//! `hearth_git::isolated`). Started by the worker, never by hand.

fn main() -> std::process::ExitCode {
    hearth_git::isolated::serve()
}

//! The git helper: one operation on one session's repository, confined and bounded (see
//! `hearth_git::isolated`). Started by the worker, never by hand.

fn main() -> std::process::ExitCode {
    hearth_git::isolated::serve(|| {
        hearth_python_runner::privileges::keep_file_access_only()
            .map_err(|e| format!("giving up capabilities: {e}"))
    })
}

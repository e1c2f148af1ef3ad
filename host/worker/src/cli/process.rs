//! Programs from the command line: `hearth exec` (in the foreground, or `--background`),
//! `hearth ps`, `hearth logs` (following a background process from its cursors) and
//! `hearth kill`.

use anyhow::{Result, bail};
use hearth_client::Client;
use hearth_client::wire::exec::ExecRequest;
use hearth_client::wire::processes::{OutputQuery, ProcessState, SignalName};

/// `hearth exec SESSION [--background] [--timeout S] -- COMMAND…`: a foreground run prints its
/// output and exits with its code; a background one prints the process id.
pub async fn exec(
    client: &Client,
    session: &str,
    command: &[String],
    background: bool,
    timeout_s: Option<f64>,
) -> Result<std::process::ExitCode> {
    let request = ExecRequest {
        command: Some(command.join(" ")),
        timeout_s,
        ..ExecRequest::default()
    };
    if background {
        let process = client.exec_background(session, &request).await?;
        println!("{}", process.id);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let answer = client.exec(session, &request).await?;
    print!("{}", answer.stdout);
    eprint!("{}", answer.stderr);
    if answer.timed_out {
        eprintln!("hearth: the run was killed at its wall time");
    }
    let code = answer
        .exit_code
        .or(answer.signal.map(|s| 128 + s))
        .unwrap_or(1);
    Ok(std::process::ExitCode::from(
        u8::try_from(code).unwrap_or(1),
    ))
}

/// `hearth ps SESSION`: the session's background processes.
pub async fn ps(client: &Client, session: &str) -> Result<()> {
    for p in client.processes(session).await?.processes {
        let state = match (p.state, p.exit_code, p.signal) {
            (ProcessState::Running, ..) => "running".to_owned(),
            (ProcessState::Lost, ..) => "lost".to_owned(),
            (ProcessState::Exited, Some(code), _) => format!("exited {code}"),
            (ProcessState::Exited, None, Some(signal)) => format!("killed by signal {signal}"),
            (ProcessState::Exited, None, None) => "exited".to_owned(),
        };
        println!("{}\t{state}\t{} ms\t{}", p.id, p.duration_ms, p.command);
    }
    Ok(())
}

/// `hearth logs SESSION PROCESS [--follow]`: what the process wrote (still kept), stdout to
/// stdout and stderr to stderr; with `--follow`, until it ends.
pub async fn logs(client: &Client, session: &str, process: &str, follow: bool) -> Result<()> {
    let mut query = OutputQuery {
        wait_s: follow.then_some(30.0),
        ..OutputQuery::default()
    };
    loop {
        let read = client.process_output(session, process, &query).await?;
        for (name, part) in [("stdout", &read.stdout), ("stderr", &read.stderr)] {
            if part.missed > 0 {
                eprintln!("hearth: {} bytes of {name} are no longer kept", part.missed);
            }
        }
        print!("{}", read.stdout.data);
        eprint!("{}", read.stderr.data);
        query.stdout = Some(read.stdout.next);
        query.stderr = Some(read.stderr.next);
        let done = read.stdout.eof && read.stderr.eof;
        if !follow || done || read.process.state == ProcessState::Lost {
            return Ok(());
        }
    }
}

/// `hearth kill SESSION PROCESS [--signal NAME]`: SIGKILL and forget it, or send a signal.
pub async fn kill(
    client: &Client,
    session: &str,
    process: &str,
    signal: Option<&str>,
) -> Result<()> {
    let Some(name) = signal else {
        client.kill_process(session, process).await?;
        return Ok(());
    };
    let upper = name.to_ascii_uppercase();
    let full = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    let Ok(signal) = serde_json::from_value::<SignalName>(serde_json::Value::String(full)) else {
        bail!(
            "`{name}` is not a signal a process may be sent (TERM, INT, HUP, QUIT, USR1, USR2, CONT, WINCH, ALRM, KILL)"
        );
    };
    let outcome = client.signal_process(session, process, signal).await?;
    if !outcome.delivered {
        eprintln!("hearth: {process} had already ended");
    }
    Ok(())
}

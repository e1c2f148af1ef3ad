//! A session's programs while they run (see `docs/concurrency.md`).
//!
//! Every run of a session is registered here, so that deleting the session (or stopping the
//! worker) ends it: a foreground run for as long as its request waits, a background process
//! until it ends and is removed. A background process keeps the last bytes of each of its
//! streams in a ring, read from byte cursors, so a reader that went away loses nothing still
//! in the ring and learns exactly what it lost. What processes a session had is recorded in
//! its state directory: after a restart, those that were running are reported `lost`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_python_runner::{Outcome, OutputSink, RunControl, RunStdin, Running, Stream};
use hearth_wire::exec::KeepOutput;
use hearth_wire::processes::{OutputRead, ProcessInfo, ProcessState};
use serde::{Deserialize, Serialize};

use crate::sessions::{now_ms, rfc3339_ms};

/// Ended processes kept per session (the oldest ended one goes when one more ends).
const ENDED_KEPT: usize = 32;

/// Why a process could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process `{0}` in this session")]
    NotFound(String),
    #[error("the session runs {0} background processes, its most; wait for one or kill one")]
    SessionLimit(usize),
    #[error("the worker runs {0} background processes, its most")]
    WorkerLimit(usize),
    #[error("the session is being deleted")]
    Closed,
    #[error("the process's stdin is closed")]
    StdinClosed,
    #[error("an earlier write is still waiting for the program to read its stdin")]
    StdinBusy,
    #[error("starting the program: {0}")]
    Start(String),
}

/// A session's runs.
pub struct Processes {
    /// The number of the last background process (`p<n>`).
    next: AtomicU64,
    /// The number of the last foreground run (never shown).
    next_foreground: AtomicU64,
    table: Mutex<Table>,
    /// `state/processes.json`: what a restart reports.
    record: PathBuf,
    /// Background processes running on the whole worker, against `limits.worker_max`.
    worker_running: Arc<AtomicUsize>,
    /// The outputs of ended processes still kept, worker-wide (see [`Retained`]).
    retained: Arc<Retained>,
}

/// The outputs of ended processes the worker still keeps, oldest first, all sessions together.
/// Beyond `limit` (the worker's `max_background_total`), the oldest one's rings are emptied: a
/// read then says what it missed. With the running ones, what outputs hold is at most
/// `2 × max_background_total × 2 × background_output_bytes`, however many sessions there are.
#[derive(Default)]
pub struct Retained {
    ended: Mutex<VecDeque<std::sync::Weak<Output>>>,
}

impl Retained {
    fn keep(&self, output: &Arc<Output>, limit: usize) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.retain(|o| o.strong_count() > 0);
        ended.push_back(Arc::downgrade(output));
        while ended.len() > limit {
            if let Some(oldest) = ended.pop_front().and_then(|o| o.upgrade()) {
                oldest.forget();
            }
        }
    }
}

#[derive(Default)]
struct Table {
    /// Background processes, oldest first.
    background: Vec<Arc<Process>>,
    /// Foreground runs in progress, by a number of their own.
    foreground: HashMap<u64, RunControl>,
    /// Set when the session goes: nothing new starts.
    closed: bool,
    /// Background processes being started (counted against the limit before they run).
    starting: usize,
}

/// How many background processes may run.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    pub session_max: usize,
    pub worker_max: usize,
    /// Bytes of each stream kept.
    pub output_bytes: usize,
    /// Which of them.
    pub keep_output: KeepOutput,
}

impl Processes {
    /// The processes of a session whose state directory is `state_dir`, with those the
    /// record names from before a restart (the running ones lost).
    pub fn load(
        state_dir: &std::path::Path,
        worker_running: Arc<AtomicUsize>,
        retained: Arc<Retained>,
    ) -> Self {
        let record = state_dir.join("processes.json");
        let recorded: Vec<Recorded> = std::fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let next = recorded
            .iter()
            .filter_map(|r| r.id.strip_prefix('p')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let background = recorded.into_iter().map(Process::recorded).collect();
        // Written again at the next start or end: until then, a running one stays lost.
        Self {
            next: AtomicU64::new(next),
            next_foreground: AtomicU64::new(0),
            table: Mutex::new(Table {
                background,
                ..Table::default()
            }),
            record,
            worker_running,
            retained,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a foreground run, so that the session's end ends it too; `None` when the
    /// session is going. Unregistered when the guard drops.
    pub fn foreground(&self, control: RunControl) -> Option<ForegroundRun<'_>> {
        let number = self.next_foreground.fetch_add(1, Ordering::AcqRel);
        let mut table = self.table();
        if table.closed {
            let _ = control.signal(nix::sys::signal::Signal::SIGKILL);
            return None;
        }
        table.foreground.insert(number, control);
        Some(ForegroundRun {
            processes: self,
            number,
        })
    }

    fn next_number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Starts a background process: `start` is given the sink its output goes to. `on_end`
    /// runs on the process's waiting thread once it has ended and been recorded.
    pub fn start_background(
        self: &Arc<Self>,
        limits: ProcessLimits,
        command: String,
        start: impl FnOnce(OutputSink) -> Result<Running, String>,
        on_end: impl FnOnce(&Outcome) + Send + 'static,
    ) -> Result<Arc<Process>, ProcessError> {
        // Counted against the limit from here, so that two starts at once cannot pass it.
        let _starting = {
            let mut table = self.table();
            let running_here = table.background.iter().filter(|p| p.is_running()).count();
            if running_here + table.starting >= limits.session_max {
                return Err(ProcessError::SessionLimit(limits.session_max));
            }
            table.starting += 1;
            Starting(self)
        };
        if self.worker_running.fetch_add(1, Ordering::AcqRel) >= limits.worker_max {
            self.worker_running.fetch_sub(1, Ordering::AcqRel);
            return Err(ProcessError::WorkerLimit(limits.worker_max));
        }
        let slot = WorkerSlot(self.worker_running.clone());
        let id = format!("p{}", self.next_number());
        let output = Arc::new(Output::new(limits.output_bytes, limits.keep_output));
        let sink_output = output.clone();
        let sink: OutputSink = Arc::new(move |stream: Stream, chunk: &[u8]| {
            sink_output.push(stream, chunk);
        });
        let running = start(sink).map_err(ProcessError::Start)?;
        let process = Arc::new(Process {
            id,
            command,
            started_at_ms: now_ms(),
            started: Some(Instant::now()),
            control: Some(running.control()),
            stdin: Some(running.stdin()),
            output,
            end: Mutex::new(None),
        });
        {
            let mut table = self.table();
            if table.closed {
                drop(table);
                let _ = running.control().signal(nix::sys::signal::Signal::SIGKILL);
                drop(running.wait());
                return Err(ProcessError::Closed);
            }
            table.background.push(process.clone());
        }
        self.persist();
        let (processes, waited) = (self.clone(), process.clone());
        let waiter = std::thread::Builder::new()
            .name("hearth-process".into())
            .spawn(move || {
                let _slot = slot;
                let outcome = running.wait();
                waited.finish(&outcome);
                processes.retained.keep(&waited.output, limits.worker_max);
                processes.forget_old_ended();
                processes.persist();
                on_end(&outcome);
            });
        if let Err(e) = waiter {
            // Nothing would wait for it: it must not run unwatched.
            if let Some(control) = &process.control {
                let _ = control.signal(nix::sys::signal::Signal::SIGKILL);
            }
            return Err(ProcessError::Start(format!(
                "no thread to wait for it: {e}"
            )));
        }
        Ok(process)
    }

    /// A process by id.
    pub fn get(&self, id: &str) -> Result<Arc<Process>, ProcessError> {
        self.table()
            .background
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or_else(|| ProcessError::NotFound(id.to_owned()))
    }

    /// Every background process, oldest first.
    pub fn list(&self) -> Vec<Arc<Process>> {
        self.table().background.clone()
    }

    /// Removes an ended process from the list.
    pub fn remove(&self, id: &str) {
        self.table().background.retain(|p| p.id != id);
        self.persist();
    }

    /// How many runs are in progress (foreground and background).
    pub fn running(&self) -> usize {
        let table = self.table();
        table.foreground.len() + table.background.iter().filter(|p| p.is_running()).count()
    }

    /// Ends every run of the session and starts no more: the session is going (or the
    /// worker). Waits (a bounded time) for the background processes to be reaped.
    pub fn close(&self) {
        let (background, foreground) = {
            let mut table = self.table();
            table.closed = true;
            let foreground: Vec<RunControl> = table.foreground.values().cloned().collect();
            (table.background.clone(), foreground)
        };
        for control in foreground
            .iter()
            .chain(background.iter().filter_map(|p| p.control.as_ref()))
        {
            let _ = control.signal(nix::sys::signal::Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for process in background {
            while process.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Lets the session start runs again after a [`Processes::close`] that did not end it (its
    /// last snapshot failed: the session stays).
    pub fn reopen(&self) {
        self.table().closed = false;
    }

    /// Drops the oldest ended processes beyond [`ENDED_KEPT`].
    fn forget_old_ended(&self) {
        let mut table = self.table();
        let ended = table.background.iter().filter(|p| !p.is_running()).count();
        let mut surplus = ended.saturating_sub(ENDED_KEPT);
        table.background.retain(|p| {
            let drop_it = surplus > 0 && !p.is_running();
            surplus -= usize::from(drop_it);
            !drop_it
        });
    }

    /// Writes the record (a new file renamed over the old: a crash keeps one or the other).
    fn persist(&self) {
        let recorded: Vec<Recorded> = self.table().background.iter().map(|p| p.record()).collect();
        let temporary = self.record.with_extension("json.new");
        let written = serde_json::to_vec(&recorded)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &self.record));
        if let Err(e) = written {
            tracing::warn!(record = %self.record.display(), error = %e, "recording the session's processes");
        }
    }
}

/// A background process being started, counted against its session's limit until it is
/// listed (or failed).
struct Starting<'a>(&'a Processes);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.table().starting -= 1;
    }
}

/// A background process's claim on the worker's count, given back when it ends.
struct WorkerSlot(Arc<AtomicUsize>);

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A registered foreground run; see [`Processes::foreground`].
pub struct ForegroundRun<'a> {
    processes: &'a Processes,
    number: u64,
}

impl Drop for ForegroundRun<'_> {
    fn drop(&mut self) {
        self.processes.table().foreground.remove(&self.number);
    }
}

/// One background process.
pub struct Process {
    pub id: String,
    command: String,
    started_at_ms: u64,
    /// `None` for a process recorded before a restart.
    started: Option<Instant>,
    control: Option<RunControl>,
    stdin: Option<RunStdin>,
    output: Arc<Output>,
    end: Mutex<Option<Ended>>,
}

/// How a process ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ended {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    oom_killed: bool,
    ended_at_ms: u64,
    duration_ms: u64,
}

/// What the record keeps of a process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    id: String,
    command: String,
    started_at_ms: u64,
    /// `None`: it was running when recorded.
    ended: Option<Ended>,
    #[serde(default)]
    stdout_bytes: u64,
    #[serde(default)]
    stderr_bytes: u64,
}

impl Process {
    fn recorded(record: Recorded) -> Arc<Self> {
        let output = Output::new(0, KeepOutput::Last);
        output.close_at(record.stdout_bytes, record.stderr_bytes);
        Arc::new(Self {
            id: record.id,
            command: record.command,
            started_at_ms: record.started_at_ms,
            started: None,
            control: None,
            stdin: None,
            output: Arc::new(output),
            end: Mutex::new(record.ended),
        })
    }

    fn record(&self) -> Recorded {
        let (stdout_bytes, stderr_bytes) = self.output.totals();
        Recorded {
            id: self.id.clone(),
            command: self.command.clone(),
            started_at_ms: self.started_at_ms,
            ended: self.ended(),
            stdout_bytes,
            stderr_bytes,
        }
    }

    fn ended(&self) -> Option<Ended> {
        self.end.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Running, as far as this worker knows (a lost process is not).
    pub fn is_running(&self) -> bool {
        self.started.is_some() && self.ended().is_none()
    }

    fn finish(&self, outcome: &Outcome) {
        if let Some(why) = &outcome.jail_error {
            // The program never started: say why where its reader looks.
            let said = format!("hearth: the jail refused to run the program: {why}\n");
            self.output.push(Stream::Stderr, said.as_bytes());
        }
        *self.end.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ended {
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            timed_out: outcome.timed_out,
            oom_killed: outcome.oom_killed,
            ended_at_ms: now_ms(),
            duration_ms: outcome.duration.as_millis() as u64,
        });
        self.output.close();
    }

    /// The process as the API shows it.
    pub fn info(&self) -> ProcessInfo {
        let ended = self.ended();
        let (stdout_bytes, stderr_bytes) = self.output.totals();
        let state = match (&ended, self.started) {
            (Some(_), _) => ProcessState::Exited,
            (None, Some(_)) => ProcessState::Running,
            (None, None) => ProcessState::Lost,
        };
        let duration_ms = match (&ended, self.started) {
            (Some(ended), _) => ended.duration_ms,
            (None, Some(started)) => started.elapsed().as_millis() as u64,
            (None, None) => 0,
        };
        ProcessInfo {
            id: self.id.clone(),
            command: self.command.clone(),
            state,
            exit_code: ended.as_ref().and_then(|e| e.exit_code),
            signal: ended.as_ref().and_then(|e| e.signal),
            timed_out: ended.as_ref().is_some_and(|e| e.timed_out),
            oom_killed: ended.as_ref().is_some_and(|e| e.oom_killed),
            started_at: rfc3339_ms(self.started_at_ms),
            ended_at: ended.as_ref().map(|e| rfc3339_ms(e.ended_at_ms)),
            duration_ms,
            stdout_bytes,
            stderr_bytes,
            stdin_open: ended.is_none() && self.stdin.as_ref().is_some_and(RunStdin::is_open),
        }
    }

    /// Sends `signal`; `false` when the process had already ended.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> std::io::Result<bool> {
        match (&self.control, self.is_running()) {
            (Some(control), true) => control.signal(signal),
            _ => Ok(false),
        }
    }

    /// Writes to its stdin (blocking while the program does not read; see `write_stdin`).
    pub fn write_stdin(&self, data: &[u8], close: bool) -> Result<(), ProcessError> {
        let stdin = self
            .stdin
            .as_ref()
            .filter(|_| self.is_running())
            .ok_or(ProcessError::StdinClosed)?;
        stdin.write(data, close).map_err(|e| match e {
            hearth_python_runner::StdinError::Busy => ProcessError::StdinBusy,
            _ => ProcessError::StdinClosed,
        })
    }

    /// Waits until it ended or `timeout` passed.
    pub async fn wait(&self, timeout: Duration) {
        let mut events = self.output.events.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.is_running() {
            if tokio::time::timeout_at(deadline, events.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Reads both streams from their cursors, waiting up to `wait` for something past them
    /// (or the end) when there is nothing yet.
    pub async fn read(
        &self,
        cursors: [u64; 2],
        max_bytes: usize,
        wait: Duration,
    ) -> [OutputRead; 2] {
        let mut events = self.output.events.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let reads = self.output.read(cursors, max_bytes);
            let nothing_yet = reads
                .iter()
                .all(|r| r.data.is_empty() && !r.eof && r.missed == 0);
            if !nothing_yet
                || tokio::time::timeout_at(deadline, events.changed())
                    .await
                    .is_err()
            {
                return reads;
            }
        }
    }
}

/// A process's two output rings, and the events (output, end) that wake readers.
pub struct Output {
    rings: Mutex<[Ring; 2]>,
    events: tokio::sync::watch::Sender<()>,
}

impl Output {
    fn new(capacity: usize, keep: KeepOutput) -> Self {
        Self {
            rings: Mutex::new([Ring::new(capacity, keep), Ring::new(capacity, keep)]),
            events: tokio::sync::watch::Sender::new(()),
        }
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, [Ring; 2]> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, stream: Stream, chunk: &[u8]) {
        let index = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        self.rings()[index].push(chunk);
        self.events.send_replace(());
    }

    fn close(&self) {
        for ring in self.rings().iter_mut() {
            ring.closed = true;
        }
        self.events.send_replace(());
    }

    /// Closed, empty rings that say how much had been written (a process from before a
    /// restart).
    fn close_at(&self, stdout: u64, stderr: u64) {
        let mut rings = self.rings();
        for (ring, total) in rings.iter_mut().zip([stdout, stderr]) {
            ring.empty_at(total);
            ring.closed = true;
        }
    }

    /// Empties the rings (their offsets stay: totals are right, and reads say what they
    /// missed), giving their memory back.
    fn forget(&self) {
        for ring in self.rings().iter_mut() {
            ring.empty_at(ring.end());
        }
    }

    fn totals(&self) -> (u64, u64) {
        let rings = self.rings();
        (rings[0].end(), rings[1].end())
    }

    fn read(&self, cursors: [u64; 2], max_bytes: usize) -> [OutputRead; 2] {
        let rings = self.rings();
        [
            rings[0].read(cursors[0], max_bytes),
            rings[1].read(cursors[1], max_bytes),
        ]
    }
}

/// The last (or first) `capacity` bytes of a stream, addressed by their offset in the whole
/// stream.
struct Ring {
    bytes: VecDeque<u8>,
    capacity: usize,
    keep: KeepOutput,
    /// The offset of `bytes[0]`.
    start: u64,
    /// Every byte written, kept or not: past `stored_end` only when the first are kept.
    total: u64,
    closed: bool,
}

impl Ring {
    fn new(capacity: usize, keep: KeepOutput) -> Self {
        Self {
            bytes: VecDeque::new(),
            capacity,
            keep,
            start: 0,
            total: 0,
            closed: false,
        }
    }

    /// Every byte written.
    fn end(&self) -> u64 {
        self.total
    }

    /// Where the kept bytes end.
    fn stored_end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Empty, with everything up to `total` read or lost.
    fn empty_at(&mut self, total: u64) {
        self.bytes = VecDeque::new();
        self.start = total;
        self.total = total;
    }

    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        match self.keep {
            KeepOutput::Last => {
                self.bytes.extend(chunk);
                let over = self.bytes.len().saturating_sub(self.capacity);
                if over > 0 {
                    self.bytes.drain(..over);
                    self.start += over as u64;
                }
            }
            KeepOutput::First => {
                let room = self.capacity.saturating_sub(self.bytes.len());
                self.bytes.extend(&chunk[..room.min(chunk.len())]);
            }
        }
    }

    /// Whether no more bytes will be kept: closed, or the first `capacity` are.
    fn stored_final(&self) -> bool {
        self.closed || (self.keep == KeepOutput::First && self.stored_end() < self.total)
    }

    /// Up to `max_bytes` from `cursor`, cut so no character is split: a cut character's
    /// start waits for the next read (unless no more will be kept: then it is replaced, as a
    /// foreground run's answer replaces it), and the continuation bytes of one whose start the
    /// ring dropped count as missed, as do the bytes written past the first ones kept.
    fn read(&self, cursor: u64, max_bytes: usize) -> OutputRead {
        let (stored_end, end) = (self.stored_end(), self.end());
        let mut from = cursor.clamp(self.start, end);
        if from >= stored_end {
            from = end;
        }
        let offset = |at: u64| (at - self.start) as usize;
        // A read starting inside a character (a cursor in one, or the ring dropped its start)
        // starts at the next one.
        let mut skipped = 0;
        while from < stored_end && skipped < 3 && is_continuation(self.bytes[offset(from)]) {
            from += 1;
            skipped += 1;
        }
        let until = stored_end.min(from + max_bytes as u64);
        let mut taken: Vec<u8> = if from < until {
            self.bytes
                .range(offset(from)..offset(until))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        if !(self.stored_final() && until == stored_end) {
            // Hold back a character cut at the end.
            if let Err(e) = std::str::from_utf8(&taken)
                && e.error_len().is_none()
            {
                taken.truncate(e.valid_up_to());
            }
        }
        let next = from + taken.len() as u64;
        OutputRead {
            data: String::from_utf8_lossy(&taken).into_owned(),
            cursor: from,
            next,
            missed: from.saturating_sub(cursor),
            eof: self.closed && next == end,
        }
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_bytes_and_says_what_was_missed() {
        let mut ring = Ring::new(8, KeepOutput::Last);
        ring.push(b"hello ");
        ring.push(b"world!");
        assert_eq!((ring.start, ring.end()), (4, 12));
        let read = ring.read(0, 100);
        assert_eq!(
            (read.data.as_str(), read.cursor, read.next, read.missed),
            ("o world!", 4, 12, 4)
        );
        let read = ring.read(6, 3);
        assert_eq!(
            (read.data.as_str(), read.cursor, read.next, read.missed),
            ("wor", 6, 9, 0)
        );
        let read = ring.read(12, 3);
        assert_eq!((read.data.as_str(), read.next, read.eof), ("", 12, false));
        ring.closed = true;
        assert!(ring.read(12, 3).eof);
        assert!(ring.read(99, 3).eof, "a cursor past the end reads the end");
    }

    #[test]
    fn characters_are_never_split() {
        let mut ring = Ring::new(64, KeepOutput::Last);
        let text = "añb€";
        ring.push(&text.as_bytes()[..2]); // "a" and the first byte of "ñ"
        let read = ring.read(0, 100);
        assert_eq!((read.data.as_str(), read.next), ("a", 1));
        ring.push(&text.as_bytes()[2..]);
        let read = ring.read(read.next, 100);
        assert_eq!(read.data, "ñb€");
        // A cursor inside a character skips to the next one, and says so.
        let read = ring.read(2, 100);
        assert_eq!((read.data.as_str(), read.cursor, read.missed), ("b€", 3, 1));
        // A cap inside a character holds it back.
        let read = ring.read(4, 2);
        assert_eq!((read.data.as_str(), read.next), ("", 4));
    }

    #[test]
    fn a_ring_that_keeps_the_first_bytes_counts_the_rest_as_missed() {
        let mut ring = Ring::new(8, KeepOutput::First);
        ring.push(b"hello ");
        ring.push(b"world!");
        assert_eq!((ring.start, ring.stored_end(), ring.end()), (0, 8, 12));
        // However late the reader, the start is there.
        let read = ring.read(0, 3);
        assert_eq!((read.data.as_str(), read.next, read.missed), ("hel", 3, 0));
        let read = ring.read(3, 100);
        assert_eq!(
            (read.data.as_str(), read.next, read.missed),
            ("lo wo", 8, 0)
        );
        // Past the kept bytes: what was written there is missed, and the reader is at the end.
        let read = ring.read(8, 100);
        assert_eq!(
            (
                read.data.as_str(),
                read.cursor,
                read.next,
                read.missed,
                read.eof
            ),
            ("", 12, 12, 4, false)
        );
        ring.push(b"more");
        let read = ring.read(12, 100);
        assert_eq!((read.data.as_str(), read.next, read.missed), ("", 16, 4));
        ring.closed = true;
        assert!(ring.read(16, 100).eof);
    }

    #[test]
    fn a_character_cut_by_the_first_bytes_kept_is_replaced_not_held_back() {
        let mut ring = Ring::new(4, KeepOutput::First);
        ring.push("ab€".as_bytes()); // "€" is 3 bytes: 2 of them are kept
        let read = ring.read(0, 100);
        assert_eq!((read.data.as_str(), read.next), ("ab\u{fffd}", 4));
        // Still open and not full: a cut character waits, as in a ring of the last bytes.
        let mut ring = Ring::new(64, KeepOutput::First);
        ring.push(&"a€".as_bytes()[..2]);
        assert_eq!(ring.read(0, 100).data, "a");
    }
}

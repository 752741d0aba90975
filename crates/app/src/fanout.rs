//! An export file's guilds on several threads at once: one thread reads and
//! cuts the lines into runs of one guild each, worker threads handle whole
//! runs in parallel (a guild's chain is independent of every other guild's),
//! and their outputs come back in file order.
//!
//! Runs are handed out in file order and a worker takes a new run only when
//! it has finished the last one, so the oldest unfinished run always has a
//! worker; every channel is bounded, so memory does not grow with the file.
//! Each run ends with an explicit end mark and the whole file with another:
//! a thread that dies midway shows as [`Broken`], never as a shorter file.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use guildconf_domain::GuildId;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::input::InputError;

/// Lines sent to a worker at once: one channel crossing per batch, not per
/// line.
const LINE_BATCH: usize = 64;
/// Batches of lines buffered per run before the reader waits for its worker.
const BATCHES_PER_RUN: usize = 8;
/// Outputs buffered per run before its worker waits for the consumer.
const OUTPUTS_PER_RUN: usize = 512;
/// Runs the reader may be ahead of the consumer.
const RUNS_AHEAD: usize = 64;

/// One line of the file as the reader saw it.
pub(crate) struct Line {
    /// Its number, from 1.
    pub no: usize,
    /// Its text, or why it could not be read.
    pub text: Result<String, InputError>,
    /// The guild it names, when it is a JSON object with a valid `guild_id`
    /// string (what a full parse of the line would find).
    pub routed: Option<GuildId>,
}

/// What a run is, as far as the order of the guilds in the file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunStart {
    /// The lines of a guild met for the first time (and any line in between
    /// that names no guild).
    Chain(GuildId),
    /// Lines after a guild came back after another guild's lines: the guild
    /// and the line where it came back. Lines naming guilds that came back
    /// are skipped until a new guild starts. `None`: lines before the first
    /// guild, or lines of a guild that came back again.
    Skipped(Option<(GuildId, usize)>),
}

/// A worker's output, or the end of a run (or of the file).
enum Msg<T> {
    Out(T),
    End,
}

/// A run handed to a worker.
struct Job<T> {
    start: RunStart,
    lines: Receiver<Msg<Vec<Line>>>,
    out: SyncSender<Msg<T>>,
}

/// A thread of the fan-out stopped before its end mark: the output is not
/// the whole file's.
#[derive(Debug)]
pub(crate) struct Broken;

/// The reading side: fed line by line, it cuts runs and hands them out.
pub(crate) struct Dispatch<T> {
    jobs: SyncSender<Job<T>>,
    order: SyncSender<Msg<Receiver<Msg<T>>>>,
    run: Option<(RunStart, SyncSender<Msg<Vec<Line>>>)>,
    batch: Vec<Line>,
    seen: std::collections::BTreeSet<GuildId>,
    scattered: std::collections::BTreeSet<GuildId>,
}

/// The consuming side: every worker output, in file order.
pub(crate) struct Ordered<T> {
    order: Receiver<Msg<Receiver<Msg<T>>>>,
    current: Option<Receiver<Msg<T>>>,
    done: bool,
}

/// How many worker threads to run: one per core, at least one and at most
/// four.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// Starts `workers` threads running `work` over each run: `work` gets the
/// run's start, its lines, and a sink for outputs that answers `false` once
/// nobody reads them any more (then `work` should return). Returns the side
/// to feed lines into and the side to read outputs from.
pub(crate) fn start<T, W>(workers: usize, work: W) -> (Dispatch<T>, Ordered<T>)
where
    T: Send + 'static,
    W: Fn(RunStart, &mut dyn Iterator<Item = Line>, &mut dyn FnMut(T) -> bool)
        + Send
        + Sync
        + 'static,
{
    let (jobs_tx, jobs_rx) = sync_channel::<Job<T>>(RUNS_AHEAD);
    let (order_tx, order_rx) = sync_channel(RUNS_AHEAD);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let work = Arc::new(work);
    for _ in 0..workers.max(1) {
        let (jobs_rx, work) = (Arc::clone(&jobs_rx), Arc::clone(&work));
        std::thread::spawn(move || loop {
            // The lock is held only while waiting for the next job.
            let job = match jobs_rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            let mut ended = false;
            let mut batch = Vec::new().into_iter();
            let mut lines = std::iter::from_fn(|| loop {
                if let Some(line) = batch.next() {
                    return Some(line);
                }
                match job.lines.recv() {
                    Ok(Msg::Out(next)) => batch = next.into_iter(),
                    Ok(Msg::End) => {
                        ended = true;
                        return None;
                    }
                    // The reader stopped without ending the run.
                    Err(_) => return None,
                }
            });
            let mut open = true;
            let mut emit = |t: T| {
                open = open && job.out.send(Msg::Out(t)).is_ok();
                open
            };
            work(job.start, &mut lines, &mut emit);
            // A run is ended only when its reader ended it and `work` read
            // it through; otherwise the consumer sees the run broken.
            if open && (ended || drained(&job.lines)) {
                let _ = job.out.send(Msg::End);
            }
        });
    }
    (
        Dispatch {
            jobs: jobs_tx,
            order: order_tx,
            run: None,
            batch: Vec::with_capacity(LINE_BATCH),
            seen: Default::default(),
            scattered: Default::default(),
        },
        Ordered {
            order: order_rx,
            current: None,
            done: false,
        },
    )
}

/// Whether the rest of a run's lines end with its end mark (a worker may
/// stop reading a run early, after its first failure).
fn drained(lines: &Receiver<Msg<Vec<Line>>>) -> bool {
    loop {
        match lines.recv() {
            Ok(Msg::Out(_)) => continue,
            Ok(Msg::End) => return true,
            Err(_) => return false,
        }
    }
}

impl<T: Send + 'static> Dispatch<T> {
    /// Hands on one line (empty lines are dropped, as every reader of an
    /// export skips them). `false`: nobody reads the outputs any more.
    pub fn line(&mut self, no: usize, text: Result<String, InputError>) -> bool {
        if text.as_ref().is_ok_and(String::is_empty) {
            return true;
        }
        let routed = text.as_deref().ok().and_then(route);
        if let Some(guild) = routed {
            let next = match self.run.as_ref().map(|(start, _)| *start) {
                Some(RunStart::Chain(current)) if current == guild => None,
                Some(RunStart::Skipped(_)) if self.scattered.contains(&guild) => None,
                _ if self.scattered.contains(&guild) => Some(RunStart::Skipped(None)),
                _ if !self.seen.insert(guild) => {
                    self.scattered.insert(guild);
                    Some(RunStart::Skipped(Some((guild, no))))
                }
                _ => Some(RunStart::Chain(guild)),
            };
            if let Some(start) = next {
                if !self.begin(start) {
                    return false;
                }
            }
        } else if self.run.is_none() && !self.begin(RunStart::Skipped(None)) {
            return false;
        }
        self.batch.push(Line { no, text, routed });
        self.batch.len() < LINE_BATCH || self.send_batch()
    }

    /// Sends the lines gathered for the current run.
    fn send_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(LINE_BATCH));
        match &self.run {
            Some((_, lines)) => lines.send(Msg::Out(batch)).is_ok(),
            None => false,
        }
    }

    /// Ends the current run and starts another.
    fn begin(&mut self, start: RunStart) -> bool {
        if !self.send_batch() {
            return false;
        }
        if let Some((_, lines)) = self.run.take() {
            if lines.send(Msg::End).is_err() {
                return false;
            }
        }
        let (lines_tx, lines_rx) = sync_channel(BATCHES_PER_RUN);
        let (out_tx, out_rx) = sync_channel(OUTPUTS_PER_RUN);
        if self.order.send(Msg::Out(out_rx)).is_err() {
            return false;
        }
        let job = Job {
            start,
            lines: lines_rx,
            out: out_tx,
        };
        if self.jobs.send(job).is_err() {
            return false;
        }
        self.run = Some((start, lines_tx));
        true
    }

    /// Ends the last run and the file.
    pub fn finish(mut self) {
        if !self.send_batch() {
            return;
        }
        if let Some((_, lines)) = self.run.take() {
            let _ = lines.send(Msg::End);
        }
        let _ = self.order.send(Msg::End);
    }
}

/// Reads `reader` on a thread of its own, feeding `dispatch`.
pub(crate) fn spawn_reader<R, T>(reader: R, mut dispatch: Dispatch<T>)
where
    R: std::io::BufRead + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        for (index, text) in crate::input::Lines::new(reader).enumerate() {
            if !dispatch.line(index + 1, text) {
                return;
            }
        }
        dispatch.finish();
    });
}

impl<T> Iterator for Ordered<T> {
    type Item = Result<T, Broken>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let current = match &self.current {
                Some(run) => run,
                None => match self.order.recv() {
                    Ok(Msg::Out(run)) => self.current.insert(run),
                    Ok(Msg::End) => {
                        self.done = true;
                        return None;
                    }
                    Err(_) => break,
                },
            };
            match current.recv() {
                Ok(Msg::Out(t)) => return Some(Ok(t)),
                Ok(Msg::End) => self.current = None,
                Err(_) => break,
            }
        }
        self.done = true;
        Some(Err(Broken))
    }
}

/// The guild a line names: its first `guild_id` member, when that is a
/// string that is a valid guild id, in a line that opens as a JSON object.
/// The scan stops there, so the rest of the line (the snapshot, in the
/// order guildconf writes keys) is not read twice; the worker's full parse
/// of the line must then name the same guild, or the line is a problem.
fn route(line: &str) -> Option<GuildId> {
    let found = std::cell::Cell::new(None);
    struct V<'a>(&'a std::cell::Cell<Option<GuildId>>);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "guild_id" {
                    let value = map.next_value::<Value>()?;
                    self.0
                        .set(value.as_str().and_then(|g| GuildId::parse(g).ok()));
                    // Stops the scan: the rest of the line is the worker's.
                    return Err(serde::de::Error::custom("routed"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let _ = (&mut de).deserialize_map(V(&found));
    found.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `lines` through the fan-out with a worker that reports each
    /// run's start and line numbers.
    fn runs(lines: &[&str]) -> Vec<(RunStart, Vec<usize>)> {
        let (mut dispatch, ordered) = start(3, |start, lines, emit| {
            let nos: Vec<usize> = lines.map(|l| l.no).collect();
            emit((start, nos));
        });
        for (i, l) in lines.iter().enumerate() {
            assert!(dispatch.line(i + 1, Ok((*l).to_owned())));
        }
        dispatch.finish();
        ordered.map(|r| r.expect("not broken")).collect()
    }

    #[test]
    fn lines_are_cut_into_runs_of_one_guild_in_file_order() {
        let a = r#"{"guild_id":"80351110224678912","x":[1,{"y":2}]}"#;
        let b = r#"{"x":1,"guild_id":"80351110224678913"}"#;
        let c = r#"{"guild_id":"80351110224678914"}"#;
        let junk = "not json";
        let got = runs(&[junk, a, a, "", junk, b, c, a, c, a, b]);
        let g = |s: &str| route(s).expect("routes");
        assert_eq!(
            got,
            vec![
                (RunStart::Skipped(None), vec![1]),
                (RunStart::Chain(g(a)), vec![2, 3, 5]),
                (RunStart::Chain(g(b)), vec![6]),
                (RunStart::Chain(g(c)), vec![7]),
                (RunStart::Skipped(Some((g(a), 8))), vec![8]),
                (RunStart::Skipped(Some((g(c), 9))), vec![9, 10]),
                (RunStart::Skipped(Some((g(b), 11))), vec![11]),
            ]
        );
    }

    #[test]
    fn a_guild_is_routed_by_its_first_guild_id_member() {
        let id = "80351110224678912";
        let dup = format!(r#"{{"guild_id":"{id}","guild_id":"1"}}"#);
        assert_eq!(route(&dup).map(|g| g.to_string()), Some(id.to_owned()));
        // Escapes are read.
        let escaped = format!(r#"{{"guild_id":"\u0038{}"}}"#, &id[1..]);
        assert_eq!(route(&escaped).map(|g| g.to_string()), Some(id.to_owned()));
        for bad in [
            format!(r#"{{"guild_id":{id}}}"#),
            format!(r#"[{{"guild_id":"{id}"}}]"#),
            format!(r#"{{"x":[,"guild_id":"{id}"}}"#),
            r#"{"guild_id":"x"}"#.to_owned(),
        ] {
            assert_eq!(route(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_worker_that_dies_breaks_the_output() {
        let (mut dispatch, ordered) = start(1, |_, lines, emit| {
            for l in lines {
                assert!(l.no < 3, "a worker panics on line 3");
                emit(l.no);
            }
        });
        let line = r#"{"guild_id":"80351110224678912"}"#;
        for no in 1..=4 {
            if !dispatch.line(no, Ok(line.to_owned())) {
                break;
            }
        }
        dispatch.finish();
        let got: Vec<Result<usize, Broken>> = ordered.collect();
        assert!(matches!(got.last(), Some(Err(Broken))), "{got:?}");
    }
}

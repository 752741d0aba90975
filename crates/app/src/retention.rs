//! Scheduled retention for bots that embed guildconf: the purge
//! ([`ConfigService::purge`]) run by a background task at every interval,
//! as a `scheduled` actor, each run reported through `tracing`, the
//! `metrics` feature's counters and a status channel.

use std::time::Duration;

use guildconf_domain::{Actor, ActorKind, GuildId, Timestamp};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::purge::PurgeResult;
use crate::service::{check_meta, ConfigService, WriteMeta};

/// The actor id a retention policy records unless told otherwise.
pub const DEFAULT_RETENTION_ACTOR: &str = "guildconf-retention";

/// What scheduled retention does: every `every`, the purge of
/// [`ConfigService::purge`] with the cut-off `now − keep` (entries that
/// occurred before it are removed, never the entry that made a guild's
/// current version nor any later one), over every guild or one, recorded
/// as an actor of kind [`ActorKind::Scheduled`].
///
/// ```
/// use std::time::Duration;
/// use guildconf::RetentionPolicy;
/// const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// let policy = RetentionPolicy::new(DAY, 90 * DAY)?
///     .actor("retention-job", Some("nightly retention"))?
///     .reason("keep 90 days of history")?;
/// # let _ = policy; Ok::<(), guildconf::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RetentionPolicy {
    every: Duration,
    keep: chrono::Duration,
    guild: Option<GuildId>,
    meta: WriteMeta,
}

impl RetentionPolicy {
    /// Every `every`, purge the entries older than `keep`, in every guild,
    /// as the scheduled actor [`DEFAULT_RETENTION_ACTOR`].
    ///
    /// # Errors
    /// [`Error::Invalid`] at `/every` for a zero interval, at `/keep` for
    /// an age beyond chrono's range (some 292 million years).
    pub fn new(every: Duration, keep: Duration) -> Result<Self> {
        if every.is_zero() {
            return Err(Error::invalid("/every", "must be longer than zero"));
        }
        let keep = chrono::Duration::from_std(keep)
            .map_err(|_| Error::invalid("/keep", "is too long to subtract from a date"))?;
        Ok(Self {
            every,
            keep,
            guild: None,
            meta: WriteMeta::new(Actor {
                id: DEFAULT_RETENTION_ACTOR.to_owned(),
                kind: ActorKind::Scheduled,
                label: DEFAULT_RETENTION_ACTOR.to_owned(),
            }),
        })
    }

    /// Purges this guild only (a run fails, and is reported, while the
    /// guild has no history).
    #[must_use]
    pub fn guild(mut self, guild: GuildId) -> Self {
        self.guild = Some(guild);
        self
    }

    /// Records the purge entries as this actor, always of kind
    /// [`ActorKind::Scheduled`].
    ///
    /// # Errors
    /// [`Error::Invalid`] when the id or label breaks the actor rules
    /// ([`Actor::new`]).
    pub fn actor(mut self, id: &str, label: Option<&str>) -> Result<Self> {
        self.meta.actor = Actor::new(id, ActorKind::Scheduled, label)?;
        Ok(self)
    }

    /// Why, kept in each purge entry.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a reason any write would refuse (too long,
    /// control characters).
    pub fn reason(mut self, reason: impl Into<String>) -> Result<Self> {
        self.meta.reason = Some(reason.into());
        check_meta(&self.meta)?;
        Ok(self)
    }

    /// The purge's cut-off for a run starting at `now`.
    fn before(&self, now: chrono::DateTime<chrono::Utc>) -> Timestamp {
        // An age reaching before the earliest date saturates there, which
        // purges nothing: the safe side to err on.
        let cut = now
            .checked_sub_signed(self.keep)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        Timestamp::from_datetime(cut)
    }
}

/// One finished retention run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRun {
    /// Its number, from 1.
    pub number: u64,
    /// The cut-off it purged before.
    pub before: Timestamp,
    /// The guilds it purged (a guild with nothing to remove is left out,
    /// unless the policy names it). Empty when the run failed.
    pub purged: Vec<PurgeResult>,
    /// Why the run failed (guilds purged before the failure stay purged);
    /// `None` when it succeeded.
    pub error: Option<String>,
}

/// What a retention task has done so far, as its status channel shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionStatus {
    /// Runs finished, failed ones included.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// The latest finished run.
    pub last: Option<RetentionRun>,
}

/// The running retention task of [`spawn_retention`]. Dropping the handle
/// stops the task at once; [`RetentionHandle::stop`] stops it and waits
/// until it has ended.
#[derive(Debug)]
pub struct RetentionHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    status: watch::Receiver<RetentionStatus>,
}

impl RetentionHandle {
    /// A receiver of the task's status, updated after every run; its
    /// `changed()` fails once the task has ended.
    pub fn status(&self) -> watch::Receiver<RetentionStatus> {
        self.status.clone()
    }

    /// Stops the task and waits until it has ended. A run in progress is
    /// abandoned at its next await: each guild's purge is one transaction,
    /// so what was purged stays purged and nothing is half written.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already; then there is no one to tell.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The task never panics by design; a panic would already have
            // been printed by the runtime, so there is nothing to add here.
            let _ = task.await;
        }
    }
}

impl Drop for RetentionHandle {
    fn drop(&mut self) {
        // Dropping the stop sender would end the task at its next poll;
        // aborting also ends it while it waits on the database.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts scheduled retention on the current Tokio runtime: the purge of
/// `policy` runs at once, then every `policy` interval (a run that takes
/// longer delays the next one; runs never overlap), until the handle is
/// dropped or stopped. Each run is reported as an `info` span
/// `retention_run` with an event carrying its counts (an `error` event
/// when it fails), through the `metrics` feature's
/// `guildconf_retention_runs_total` and
/// `guildconf_retention_purged_entries_total`, and on
/// [`RetentionHandle::status`]. A failed run does not stop the task: the
/// next one runs at the next interval.
///
/// Every process that spawns it purges: with many shards, spawn it in one,
/// or accept that the others find nothing left to purge (a guild with
/// nothing to remove gets no purge entry).
///
/// ```no_run
/// # async fn run(service: guildconf::ConfigService) -> guildconf::Result<()> {
/// use std::time::Duration;
/// use guildconf::{spawn_retention, RetentionPolicy};
/// const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// let retention = spawn_retention(service, RetentionPolicy::new(DAY, 90 * DAY)?);
/// // … the bot runs …
/// retention.stop().await;
/// # Ok(()) }
/// ```
///
/// # Panics
/// When called outside a Tokio runtime, as [`tokio::spawn`] does.
pub fn spawn_retention(service: ConfigService, policy: RetentionPolicy) -> RetentionHandle {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (status_tx, status_rx) = watch::channel(RetentionStatus::default());
    let task = tokio::spawn(run_loop(service, policy, stop_rx, status_tx));
    RetentionHandle {
        stop: Some(stop_tx),
        task: Some(task),
        status: status_rx,
    }
}

/// The task: a run per tick until told to stop (or the handle is gone,
/// which drops the sender and so also completes `stop`).
async fn run_loop(
    service: ConfigService,
    policy: RetentionPolicy,
    mut stop: oneshot::Receiver<()>,
    status: watch::Sender<RetentionStatus>,
) {
    let mut ticks = tokio::time::interval(policy.every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut number = 0;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = ticks.tick() => {}
        }
        number += 1;
        let run = tokio::select! {
            biased;
            _ = &mut stop => return,
            run = run_once(&service, &policy, number) => run,
        };
        status.send_modify(|s| {
            s.runs += 1;
            s.failures += u64::from(run.error.is_some());
            s.last = Some(run);
        });
    }
}

/// One run: the purge at `now − keep`, reported.
async fn run_once(service: &ConfigService, policy: &RetentionPolicy, number: u64) -> RetentionRun {
    let before = policy.before(service.clock.now());
    let span = tracing::info_span!("retention_run", run = number, %before);
    async move {
        let result = service.purge(before, policy.guild, &policy.meta).await;
        crate::metrics::retention_run(&result);
        match result {
            Ok(purged) => {
                tracing::info!(
                    guilds = purged.len(),
                    entries = purged.iter().map(|p| p.entries_removed).sum::<u64>(),
                    snapshots = purged.iter().map(|p| p.snapshots_removed).sum::<u64>(),
                    "retention run finished"
                );
                RetentionRun {
                    number,
                    before,
                    purged,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention run failed; the next one runs at the next interval");
                RetentionRun {
                    number,
                    before,
                    purged: Vec::new(),
                    error: Some(e.to_string()),
                }
            }
        }
    }
    .instrument(span)
    .await
}

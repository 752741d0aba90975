//! Metrics through the `metrics` facade, compiled in only with the
//! `metrics` cargo feature. Each concern calls in here from one place: the
//! write loop ([`WriteProbe`]), a finished verification
//! (`VerifyReport::done`) and a retention run. Without the feature every
//! function is an empty inline body and [`WriteProbe`] is zero-sized, so
//! the instrumented code costs nothing.
//!
//! No label ever carries a guild id, an actor or any other value a caller
//! or the database controls without bound: labels are operations (the
//! edit's kind or a registered action key), outcomes, error codes and
//! problem codes, so the number of series stays small whatever the number
//! of guilds.

use guildconf_ports::StoreError;

use crate::error::Result;
use crate::purge::PurgeResult;
use crate::service::{Edit, WriteResult};
use crate::verify::VerifyReport;

/// The metric names, for the recorder (each described in [`describe`]).
#[cfg(feature = "metrics")]
mod name {
    /// Writes that returned, by `operation` and `outcome`.
    pub(super) const WRITES: &str = "guildconf_writes_total";
    /// Writes that failed, by `operation` and `error` (the error's code).
    pub(super) const WRITE_ERRORS: &str = "guildconf_write_errors_total";
    /// Commits the store refused because the guild's head had moved.
    pub(super) const CONFLICTS: &str = "guildconf_write_conflicts_total";
    /// Writes recomputed from a new head after losing a race.
    pub(super) const RETRIES: &str = "guildconf_write_retries_total";
    /// Commits that failed for another reason than a moved head: the config
    /// change and its audit entry were not written.
    pub(super) const AUDIT_WRITE_FAILURES: &str = "guildconf_audit_write_failures_total";
    /// How long a write call took, retries included, in seconds.
    pub(super) const WRITE_DURATION: &str = "guildconf_write_duration_seconds";
    /// Verifications finished, by `outcome` (`ok` or `failed`).
    pub(super) const VERIFY_RUNS: &str = "guildconf_verify_runs_total";
    /// Verify problems, by `problem` code.
    pub(super) const VERIFY_PROBLEMS: &str = "guildconf_verify_problems_total";
    /// Scheduled retention runs, by `outcome` (`ok` or `failed`).
    pub(super) const RETENTION_RUNS: &str = "guildconf_retention_runs_total";
    /// Entries removed by scheduled retention runs.
    pub(super) const RETENTION_PURGED: &str = "guildconf_retention_purged_entries_total";

    /// The operation label of an event the action registry refused: its key
    /// may be anything the caller sent, so it is not used as a label value.
    pub(super) const REFUSED_EVENT: &str = "event";
}
#[cfg(feature = "metrics")]
use name::*;

/// One write call's measurements: started before the write loop, told of
/// each commit and retry, finished with the call's result.
#[derive(Debug)]
pub(crate) struct WriteProbe {
    #[cfg(feature = "metrics")]
    operation: &'static str,
    #[cfg(feature = "metrics")]
    event: Option<(guildconf_domain::ActionKey, &'static str)>,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl WriteProbe {
    /// Starts measuring a write of `edit`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(edit: &Edit) -> Self {
        #[cfg(feature = "metrics")]
        {
            describe();
            let (operation, event) = match edit {
                Edit::Create { .. } => ("create", None),
                Edit::Update(_) => ("update", None),
                Edit::Upsert(_) => ("upsert", None),
                Edit::Replace { .. } => ("replace", None),
                Edit::Revert { .. } => ("revert", None),
                Edit::Delete => ("delete", None),
                Edit::Event(e) => ("event", Some((e.key(), e.outcome().as_str()))),
            };
            Self {
                operation,
                event,
                started: std::time::Instant::now(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }

    /// The operation label: the edit's kind, or an event's action key
    /// (registered, so bounded in number).
    #[cfg(feature = "metrics")]
    fn operation(&self) -> String {
        match &self.event {
            Some((key, _)) => key.as_str().to_owned(),
            None => self.operation.to_owned(),
        }
    }

    /// What the store answered to a commit: a moved head is a conflict,
    /// any other error an audit write failure (nothing was written).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn committed(&self, result: &std::result::Result<(), StoreError>) {
        #[cfg(feature = "metrics")]
        match result {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                metrics::counter!(CONFLICTS, "operation" => self.operation()).increment(1);
            }
            Err(e) => {
                let error = match e {
                    StoreError::Corrupt(_) => "corrupt",
                    _ => "storage",
                };
                metrics::counter!(AUDIT_WRITE_FAILURES, "operation" => self.operation(), "error" => error)
                    .increment(1);
            }
        }
    }

    /// The write is recomputed from a new head after losing a race.
    #[inline]
    pub(crate) fn retried(&self) {
        #[cfg(feature = "metrics")]
        metrics::counter!(RETRIES, "operation" => self.operation()).increment(1);
    }

    /// The call returned `result`: counts it by outcome or error code and
    /// records its latency.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finish(self, result: &Result<WriteResult>) {
        #[cfg(feature = "metrics")]
        {
            let operation = self.operation();
            match result {
                Ok(written) => {
                    let outcome = if written.replayed {
                        "replayed"
                    } else if written.dry_run {
                        "dry_run"
                    } else if let Some((_, outcome)) = self.event {
                        outcome
                    } else {
                        outcome_label(written.outcome)
                    };
                    metrics::counter!(WRITES, "operation" => operation.clone(), "outcome" => outcome)
                        .increment(1);
                }
                Err(e) => {
                    metrics::counter!(WRITE_ERRORS, "operation" => operation.clone(), "error" => e.code())
                        .increment(1);
                }
            }
            metrics::histogram!(WRITE_DURATION, "operation" => operation)
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// A write of `operation` is recomputed after losing a race outside the
/// write loop (`modify` reads the config again and reruns its change).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn retried(operation: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(RETRIES, "operation" => operation).increment(1);
}

/// The lowercase name a write outcome is serialised as.
#[cfg(feature = "metrics")]
fn outcome_label(outcome: crate::Outcome) -> &'static str {
    use crate::Outcome;
    match outcome {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Unchanged => "unchanged",
        Outcome::Reverted => "reverted",
        Outcome::Deleted => "deleted",
        Outcome::Recorded => "recorded",
    }
}

/// An event the action registry refused before it reached the write loop.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn event_refused(error: &crate::Error) {
    #[cfg(feature = "metrics")]
    {
        describe();
        metrics::counter!(WRITE_ERRORS, "operation" => REFUSED_EVENT, "error" => error.code())
            .increment(1);
    }
}

/// A verification finished with `report`: one run, and each problem by
/// its code.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn verified(report: &VerifyReport) {
    #[cfg(feature = "metrics")]
    {
        describe();
        let outcome = if report.problems.is_empty() {
            "ok"
        } else {
            "failed"
        };
        metrics::counter!(VERIFY_RUNS, "outcome" => outcome).increment(1);
        for p in &report.problems {
            metrics::counter!(VERIFY_PROBLEMS, "problem" => p.problem.clone()).increment(1);
        }
    }
}

/// A scheduled retention run finished with `result`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn retention_run(result: &Result<Vec<PurgeResult>>) {
    #[cfg(feature = "metrics")]
    {
        describe();
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!(RETENTION_RUNS, "outcome" => outcome).increment(1);
        let purged: u64 = result
            .as_ref()
            .map_or(0, |r| r.iter().map(|p| p.entries_removed).sum());
        metrics::counter!(RETENTION_PURGED).increment(purged);
    }
}

/// Describes every metric to the installed recorder, once per process
/// (the recorder prints the descriptions as help text).
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        describe_counter!(WRITES, "Writes that returned, by operation and outcome.");
        describe_counter!(
            WRITE_ERRORS,
            "Writes that failed, by operation and error code."
        );
        describe_counter!(
            CONFLICTS,
            "Commits refused because the guild's head had moved."
        );
        describe_counter!(
            RETRIES,
            "Writes recomputed from a new head after losing a race."
        );
        describe_counter!(
            AUDIT_WRITE_FAILURES,
            "Commits that failed: neither the change nor its audit entry was written."
        );
        describe_histogram!(
            WRITE_DURATION,
            Unit::Seconds,
            "How long a write call took, retries included."
        );
        describe_counter!(VERIFY_RUNS, "Verifications finished, by outcome.");
        describe_counter!(VERIFY_PROBLEMS, "Verify problems, by problem code.");
        describe_counter!(RETENTION_RUNS, "Scheduled retention runs, by outcome.");
        describe_counter!(
            RETENTION_PURGED,
            "Audit entries removed by scheduled retention runs."
        );
    });
}

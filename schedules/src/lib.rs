//! TaskSchedules as pure decisions, without a Kubernetes client: [`when`] knows a schedule's times
//! (cron in a time zone with [`cron`], `@every`, `runAt`), [`decide`] answers what a schedule does
//! now (the runs to make or skip, the Tasks to cancel or prune, the status, when to look again).
//! The operator executes the plans; every case is table-tested here.

pub mod cron;
pub mod decide;
pub mod when;

#[cfg(test)]
mod tests;

pub use decide::{decide, task_name, Member, Note, Plan, Reason, Run, Seen};
pub use when::{When, WhenError};

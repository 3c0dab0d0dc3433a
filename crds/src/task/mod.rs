//! The `Task` custom resource: one operation (a deploy, a test run, a data load) that the operator
//! runs in its own short-lived worker Pod, with the credentials it names, in a queue, by priority,
//! within a deadline, with retries and cancellation.

pub mod limits;
mod spec;
mod status;
mod vocabulary;

pub use spec::{FailureClass, Origin, RetryPolicy, Task, TaskEnv, TaskResources, TaskSpec};
pub use status::{Condition, EventKind, ProgressEvent, TaskPhase, TaskStatus};
pub use vocabulary::{ConditionType, Reason};

/// Largest `status.result` the operator stores (the rest is cut, and says so).
pub const MAX_RESULT_BYTES: usize = 4096;
/// Progress events kept in `status.progress` (older ones are compacted away).
pub const MAX_PROGRESS_EVENTS: usize = 100;

impl Task {
    /// A Task as Ephemera's own writers (REST, webhooks, schedules) create it: in `namespace`, with
    /// [`crate::CLEANUP_FINALIZER`] already on (which saves the operator a write).
    pub fn new_in(name: &str, namespace: &str, spec: TaskSpec) -> Task {
        let mut task = Task::new(name, spec);
        task.metadata.namespace = Some(namespace.into());
        task.metadata.finalizers = Some(vec![crate::CLEANUP_FINALIZER.into()]);
        task
    }
}

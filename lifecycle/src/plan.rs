//! The vocabulary between the lifecycle and the operator: the facts the lifecycle may ask for, and
//! the plan it answers with (a status to write, effects in order, when to look again).

use std::time::Duration;

use ephemera_crds::template::TemplateResolution;
use ephemera_crds::{Reason, TaskQueueSpec, TaskStatus};

use crate::observe::ObservedPod;

/// Something the lifecycle needs to know before it can decide, which only the operator can find out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// The Task's template, rendered with its params (asked only for a templated Task not yet
    /// rendered).
    Template,
    /// The current attempt's Pod (by `status.podName`, only if it belongs to the Task).
    Pod,
    /// Whether the Task's credential names resolve to Credentials it may use.
    Credentials,
    /// The Task's queue.
    Queue,
    /// Whether the queue admits the Task now (asking reserves the slot when it does).
    Admission,
    /// The uid of the Pod the operator recorded creating for the current attempt.
    RecordedPod,
}

/// Why a Task may not have its template or its credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// One of the template or credential reasons (`InvalidParams`, `UnknownCredential`, ...).
    pub reason: Reason,
    /// What the Task author should do.
    pub message: String,
}

/// What the operator has found out so far (`None`: not asked yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// [`Fact::Template`]: the rendering, or why there is none.
    pub template: Option<Result<TemplateResolution, Refusal>>,
    /// [`Fact::Pod`]: the Pod, or `Some(None)` when there is none of ours.
    pub pod: Option<Option<ObservedPod>>,
    /// [`Fact::Credentials`].
    pub credentials: Option<Result<(), Refusal>>,
    /// [`Fact::Queue`]: its spec, or `Some(None)` when the queue does not exist.
    pub queue: Option<Option<TaskQueueSpec>>,
    /// [`Fact::Admission`].
    pub admitted: Option<bool>,
    /// [`Fact::RecordedPod`]: the recorded uid, or `Some(None)` when none was recorded.
    pub recorded_pod: Option<Option<String>>,
}

/// The lifecycle's answer.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // returned once per decision, never stored
pub enum Decision {
    /// Find this out and ask again.
    Need(Fact),
    /// Do this.
    Plan(Plan),
}

/// What to do: effects in order (`WriteStatus` writes `status`), then `next`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to write where the effects say so.
    pub status: TaskStatus,
    /// In order; an effect that fails stops the plan (the reconcile is retried).
    pub effects: Vec<Effect>,
    /// What follows the effects.
    pub next: Next,
}

impl Plan {
    /// A plan over `status` with no effects yet.
    pub fn new(status: TaskStatus) -> Self {
        Self { status, effects: Vec::new(), next: Next::AwaitChange }
    }

    /// Adds an effect.
    pub fn then(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    /// Sets what follows.
    pub fn next(mut self, next: Next) -> Self {
        self.next = next;
        self
    }
}

/// One thing the operator does.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Delete a running Pod with the configured grace (its worker revokes what it minted).
    StopPod(String),
    /// Record a Kubernetes Event on the Task.
    Event(Note),
    /// Write `Plan::status` (only if it changed).
    WriteStatus,
    /// Keep the uid of the Pod just created in memory until a status write carries it, instead of
    /// a write of its own (Kubernetes controllers' "expectations"): the next look at the Task, a GET
    /// of its Pod, tells a Pod not yet started from one deleted.
    ExpectPod(String),
    /// Give the Task's queue slot back.
    ReleaseSlot,
    /// Revoke the Vault tokens of attempts that are over; with `announce`, say so in an Event.
    RevokeEnded {
        /// Record a `CredentialsRevoked` Event when something was revoked.
        announce: bool,
    },
    /// Delete the Task (its TTL after finishing has passed).
    DeleteTask,
    /// Count or time something.
    Metric(Metric),
}

/// A Kubernetes Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// Its reason.
    pub reason: Reason,
    /// Its message.
    pub message: String,
}

impl Note {
    /// A `Normal` event.
    pub fn normal(reason: Reason, message: impl Into<String>) -> Effect {
        Effect::Event(Note { warning: false, reason, message: message.into() })
    }

    /// A `Warning` event.
    pub fn warning(reason: Reason, message: impl Into<String>) -> Effect {
        Effect::Event(Note { warning: true, reason, message: message.into() })
    }
}

/// What the operator measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A worker could not unwrap its token.
    UnwrapFailure,
    /// Vault failed to mint an attempt's token.
    VaultError,
    /// Task creation to its first attempt's Pod.
    PodCreatedLatency(Duration),
    /// Task creation to its command running.
    StartLatency(Duration),
}

/// What follows a plan's effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the Task or its Pod changes.
    AwaitChange,
    /// Look again after this long.
    After(Duration),
    /// Start the attempt in `Plan::status`: resolve and issue its credentials and create its Pod
    /// (see [`crate::start`] for what each outcome leads to).
    StartAttempt,
}

//! Whether the hand-off releases an attempt's wrapping token to a caller: a pure decision over what
//! TokenReview said about the caller, what it asked for and the operator's attempt record.

use ephemera_crds::worker::HandoffRequest;

use crate::attempt_record::View;

/// Who TokenReview says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `system:serviceaccount:<namespace>:<name>` for ServiceAccount tokens.
    pub username: String,
    /// The Pod the token is bound to (`authentication.kubernetes.io/pod-name`).
    pub pod_name: Option<String>,
    /// Its uid (`authentication.kubernetes.io/pod-uid`).
    pub pod_uid: Option<String>,
}

/// Why a claim is refused (each maps to one HTTP status and a problem type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No valid identity token for the hand-off's audience.
    Unauthenticated,
    /// A valid token, but not a Pod-bound ServiceAccount token of the Task's namespace.
    NotAPodOfTheNamespace,
    /// No token is waiting for this attempt.
    NoRecord,
    /// The caller is not the Pod the operator created for this attempt.
    NotTheAttemptsPod,
    /// The token was already handed out (possible interception).
    AlreadyReleased,
}

impl Refusal {
    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthenticated => 401,
            Refusal::NotAPodOfTheNamespace | Refusal::NotTheAttemptsPod => 403,
            Refusal::NoRecord => 404,
            Refusal::AlreadyReleased => 409,
        }
    }

    /// What the caller is told (never anything about other attempts).
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "the identity token is not valid for the credential hand-off",
            Refusal::NotAPodOfTheNamespace => {
                "the identity token is not a Pod-bound ServiceAccount token of the Task's namespace"
            }
            Refusal::NoRecord => "no credentials are waiting for this attempt",
            Refusal::NotTheAttemptsPod => "the caller is not the Pod the operator created for this attempt",
            Refusal::AlreadyReleased => "this attempt's token was already handed out",
        }
    }
}

/// What to do with a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Release the wrapping token (once: the release itself is conditional on the record's version).
    Release,
    /// The operator has not recorded the attempt's Pod yet (it does right after creating it): retry.
    NotYet,
    /// Refuse.
    Refuse(Refusal),
}

/// Decides a claim.
pub fn decide(caller: Option<&Caller>, req: &HandoffRequest, record: Option<&View>) -> Decision {
    let Some(caller) = caller else { return Decision::Refuse(Refusal::Unauthenticated) };
    let namespace = caller.username.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')).map(|p| p.0);
    let (Some(pod_name), Some(pod_uid), true) =
        (caller.pod_name.as_deref(), caller.pod_uid.as_deref(), namespace == Some(req.namespace.as_str()))
    else {
        return Decision::Refuse(Refusal::NotAPodOfTheNamespace);
    };
    let Some(record) = record else { return Decision::Refuse(Refusal::NoRecord) };
    let o = &record.owner;
    let same_attempt =
        o.namespace == req.namespace && o.task == req.task && o.task_uid == req.task_uid && o.attempt == req.attempt;
    if !same_attempt || o.pod != pod_name {
        return Decision::Refuse(Refusal::NotTheAttemptsPod);
    }
    if record.pod_uid.is_empty() {
        return Decision::NotYet;
    }
    if record.pod_uid != pod_uid {
        return Decision::Refuse(Refusal::NotTheAttemptsPod);
    }
    if !record.holds_wrapping_token {
        return Decision::Refuse(Refusal::AlreadyReleased);
    }
    Decision::Release
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt_record::Owner;

    fn req() -> HandoffRequest {
        HandoffRequest { namespace: "team-a".into(), task: "deploy".into(), task_uid: "uid-1".into(), attempt: 1 }
    }

    fn record(pod_uid: &str, holds: bool) -> View {
        View {
            owner: Owner {
                namespace: "team-a".into(),
                task: "deploy".into(),
                task_uid: "uid-1".into(),
                attempt: 1,
                pod: "deploy-1".into(),
            },
            pod_uid: pod_uid.into(),
            accessor: Some("acc".into()),
            holds_wrapping_token: holds,
            token_expires: String::new(),
            wrap_expires: String::new(),
        }
    }

    fn pod(ns: &str, name: &str, uid: &str) -> Caller {
        Caller {
            username: format!("system:serviceaccount:{ns}:default"),
            pod_name: Some(name.into()),
            pod_uid: Some(uid.into()),
        }
    }

    #[test]
    fn only_the_attempts_own_pod_gets_the_token_and_only_once() {
        use Decision::*;
        use Refusal::*;
        let genuine = pod("team-a", "deploy-1", "pod-uid-1");
        type Case = (&'static str, Option<Caller>, HandoffRequest, Option<View>, Decision);
        let cases: Vec<Case> = vec![
            ("the attempt's Pod", Some(genuine.clone()), req(), Some(record("pod-uid-1", true)), Release),
            ("no identity", None, req(), Some(record("pod-uid-1", true)), Refuse(Unauthenticated)),
            (
                "a Pod of the tenant's with the same ServiceAccount",
                Some(pod("team-a", "thief", "pod-uid-9")),
                req(),
                Some(record("pod-uid-1", true)),
                Refuse(NotTheAttemptsPod),
            ),
            (
                "a same-named Pod made after the genuine one was deleted",
                Some(pod("team-a", "deploy-1", "pod-uid-2")),
                req(),
                Some(record("pod-uid-1", true)),
                Refuse(NotTheAttemptsPod),
            ),
            (
                "a Pod of another namespace",
                Some(pod("team-b", "deploy-1", "pod-uid-1")),
                req(),
                Some(record("pod-uid-1", true)),
                Refuse(NotAPodOfTheNamespace),
            ),
            (
                "a token not bound to a Pod",
                Some(Caller { pod_name: None, pod_uid: None, ..genuine.clone() }),
                req(),
                Some(record("pod-uid-1", true)),
                Refuse(NotAPodOfTheNamespace),
            ),
            (
                "a user, not a ServiceAccount",
                Some(Caller { username: "alice".into(), ..genuine.clone() }),
                req(),
                Some(record("pod-uid-1", true)),
                Refuse(NotAPodOfTheNamespace),
            ),
            (
                "asking for another attempt",
                Some(genuine.clone()),
                HandoffRequest { attempt: 2, ..req() },
                Some(record("pod-uid-1", true)),
                Refuse(NotTheAttemptsPod),
            ),
            ("nothing waiting", Some(genuine.clone()), req(), None, Refuse(NoRecord)),
            ("Pod not recorded yet", Some(genuine.clone()), req(), Some(record("", true)), NotYet),
            ("a second claim", Some(genuine.clone()), req(), Some(record("pod-uid-1", false)), Refuse(AlreadyReleased)),
        ];
        for (what, caller, r, rec, want) in cases {
            assert_eq!(decide(caller.as_ref(), &r, rec.as_ref()), want, "{what}");
        }
    }
}

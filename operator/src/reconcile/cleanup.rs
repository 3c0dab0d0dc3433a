//! Deletion of a Task: every Pod it created is removed and every token it was given revoked before
//! the finalizer lets it go.

use std::sync::Arc;

use ephemera_crds::Task;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::{credentials, pod, Context, Error};
use crate::names;

/// Stops and removes the Task's Pods and revokes its tokens; then the finalizer goes.
pub async fn cleanup(task: Arc<Task>, ctx: &Context) -> Result<Action, Error> {
    let ns = task.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", names::TASK_LABEL, names::task_label(&task.name_any()));
    let owned = pods.list(&ListParams::default().labels(&selector)).await?;
    for p in owned.items.iter().filter(|p| pod::is_ours(&task, p)) {
        match pods.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The finalizer stays until every token the Task was given is revoked.
    // As it ran: a templated Task's credentials are those of its rendering.
    credentials::revoke_ended(ctx, &task.rendered()).await?;
    ctx.admission.lock().await.release(&task);
    ctx.forget(&task);
    Ok(Action::await_change())
}

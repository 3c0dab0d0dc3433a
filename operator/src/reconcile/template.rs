//! Rendering a templated Task: its template is read from the API (not the cache, so a template
//! applied just before the Task is found) and rendered with the Task's params by the shared, pure
//! [`ephemera_crds::template::render`]; what goes wrong becomes the Task's refusal.

use ephemera_crds::template::{render as render_body, RenderError, TemplateResolution};
use ephemera_crds::{ClusterTaskTemplate, Reason, Task, TaskTemplate, TemplateKind};
use ephemera_lifecycle::Refusal;
use kube::api::Api;
use kube::ResourceExt;

use super::{Context, Error};

/// The Task rendered from its template, or why it cannot be (`Err` only for API failures).
pub async fn render(ctx: &Context, task: &Task) -> Result<Result<TemplateResolution, Refusal>, Error> {
    let Some(r) = &task.spec.template_ref else {
        return Ok(Err(Refusal { reason: Reason::TemplateNotFound, message: "the Task names no template".into() }));
    };
    let ns = task.namespace().unwrap_or_default();
    let found = match r.kind {
        TemplateKind::TaskTemplate => {
            let api: Api<TaskTemplate> = Api::namespaced(ctx.client.clone(), &ns);
            api.get_opt(&r.name).await?.map(|t| (t.uid(), t.metadata.generation, t.spec.body))
        }
        TemplateKind::ClusterTaskTemplate => {
            let api: Api<ClusterTaskTemplate> = Api::all(ctx.client.clone());
            api.get_opt(&r.name).await?.map(|t| (t.uid(), t.metadata.generation, t.spec.body))
        }
    };
    let what = format!("{} {:?}", r.kind.as_str(), r.name);
    let Some((uid, generation, body)) = found else {
        let place = match r.kind {
            TemplateKind::TaskTemplate => format!(" in namespace {ns:?}"),
            TemplateKind::ClusterTaskTemplate => String::new(),
        };
        let message = format!("{what} does not exist{place}");
        return Ok(Err(Refusal { reason: Reason::TemplateNotFound, message }));
    };
    let uid = uid.unwrap_or_default();
    Ok(render_body(r.kind, &r.name, &uid, generation.unwrap_or(0), &body, &task.spec).map_err(|e| match e {
        RenderError::InvalidTemplate(_) => Refusal { reason: Reason::InvalidTemplate, message: format!("{what}: {e}") },
        RenderError::InvalidParams(_) => Refusal { reason: Reason::InvalidParams, message: e.to_string() },
    }))
}

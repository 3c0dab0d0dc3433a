//! `/openapi.json`: OpenAPI 3.1, generated from the handlers' annotations and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};
use crate::stream::tickets::Ticket;
use crate::tasks::model::{
    CreateTask, QueueView, RetryRequest, TaskList, TaskResult, TaskView, TemplateChoice, TemplateRequest,
};
use crate::tasks::progress::Accepted;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (eph_...) or an OIDC ID token from a configured issuer"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "attempt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The attempt's reporting token (workers only)"))
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ephemera API", version = "v1", description = "Create and follow Ephemera Tasks. Errors are RFC 9457 problem details."),
    components(schemas(Ticket, Accepted, ephemera_crds::worker::ProgressBatch, ephemera_crds::worker::WorkerEvent, CreateTask, RetryRequest, TemplateChoice, TemplateRequest, ephemera_crds::TemplateKind, crate::templates::TemplateView, crate::templates::ParamView, crate::schedules::CreateSchedule, crate::schedules::ScheduleView, ephemera_crds::schedule::ConcurrencyPolicy, ephemera_crds::FailureClass, crate::webhooks::listing::TriggerView, crate::webhooks::listing::DeliveryView, TaskView, TaskList, TaskResult, QueueView, Problem, FieldError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document as JSON: [`ApiDoc`] with the paths of every documented route.
pub fn json() -> String {
    crate::documented().split_for_parts().1.to_json().unwrap_or_default()
}

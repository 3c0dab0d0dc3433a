//! `/openapi.json`: OpenAPI 3.1, generated from the handlers' annotations and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};
use crate::tasks::model::{CreateTask, QueueView, RetryOn, RetryRequest, TaskList, TaskResult, TaskView};

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
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ephemera API", version = "v1", description = "Create and follow Ephemera Tasks. Errors are RFC 9457 problem details."),
    paths(
        crate::tasks::create::create,
        crate::tasks::query::list,
        crate::tasks::query::get,
        crate::tasks::query::result,
        crate::tasks::control::cancel,
        crate::tasks::control::delete,
        crate::tasks::logs::logs,
        crate::queues::list,
    ),
    components(schemas(CreateTask, RetryRequest, RetryOn, TaskView, TaskList, TaskResult, QueueView, Problem, FieldError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_json().unwrap_or_default()
}

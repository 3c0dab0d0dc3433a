//! The full-stack suite as one test binary: every module links the API server, the operator and the
//! local cluster, so one binary instead of eight saves most of the link time and target size.
//! Run one area with a filter, e.g. `cargo nextest run -p ephemera-e2e webhooks::`.

mod api;
mod api_limits;
mod cli;
mod credentials;
mod dashboard;
mod edge;
mod helm;
mod operator;
mod provider_payloads;
mod schedules;
mod schemathesis;
mod stream;
mod task_crd;
mod templates;
mod webhooks;
mod writes;

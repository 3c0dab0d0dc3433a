//! Webhook deliveries, pure: [`verify`] says whether a delivery is genuine, the way its provider
//! signs (or authenticates) it, and names its event and delivery id; [`rules`] compiles a trigger's
//! CEL rules and says which one a delivery matches and with which params. No Kubernetes and no I/O:
//! the API server does those, and the fuzz targets in `webhooks/fuzz` drive these with hostile input.

pub mod rules;
pub mod verify;
